"""Services and nodes given as JSON data (REST bodies), checked exactly like cluster.yml.

The same loader steps as ``veo.core.config.parse_spec`` (known keys with 'did you mean', pydantic errors
in the user's words, the rules within a service and across a group), so a mistake reads the same
in the CLI and the API; only the position is missing (``services.NAME.FIELD: ...``). The policy is
the caller's business (``veo.core.policy.enforce``): a body obeys the running cluster's policy.
"""

from __future__ import annotations

from typing import Any

# the loader's own steps, shared on purpose: one implementation of every message
from veo.core.config import _Doc, _load_data, _show
from veo.core.errors import SpecError, SpecProblem
from veo.core.models import ClusterSpec, Node, Service, check_cluster_rules
from veo.core.policy import Policy

_ANY_POLICY = Policy(**dict.fromkeys(Policy.model_fields, True))


def without_nulls(value: Any) -> Any:
    """A JSON body with every ``null`` member of a mapping left out: in a REST body an explicit
    null means "not set" (the default), as a key left out does; list items stay as they are."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def validate_service(body: Any, name: str | None = None, *,
                     others: dict[str, Service] | None = None) -> Service:
    """One service. ``name`` (from a URL) fills in or must match ``name:``; ``others`` are the
    cluster's other services, for the group rules (only what this service brings is reported)."""
    if not isinstance(body, dict):
        got = _show(body)
        raise SpecError([SpecProblem(f"expected a service (a mapping with image:), got {got}")])
    body = without_nulls(body)
    key = name if name is not None else body.get("name")
    if not isinstance(key, str) or not key:
        raise SpecError([SpecProblem("missing required field 'name'", "name")])
    doc = _Doc(None, strict=True)  # type: ignore[arg-type]  # no file: no position
    spec = _load_data(doc, {"services": {key: body}}, rules=False, policy=_ANY_POLICY,
                      defaults="veo")
    if spec is None or doc.errors():
        raise SpecError(doc.sorted_problems())
    check_additions(others or {}, {key: spec.services[key]})
    return spec.services[key]


def validate_node(body: Any) -> Node:
    """One expected node, with the loader's messages (``nodes.0.FIELD: ...``)."""
    if not isinstance(body, dict):  # cluster.yml's 'name@host' shorthand is for files
        got = _show(body)
        raise SpecError([SpecProblem(f"expected a node (a mapping with name:), got {got}")])
    body = without_nulls(body)
    doc = _Doc(None, strict=True)  # type: ignore[arg-type]
    spec = _load_data(doc, {"nodes": [body]}, defaults="veo")
    if spec is None or doc.errors():
        raise SpecError(doc.sorted_problems())
    return spec.nodes[0]


def check_additions(others: dict[str, Service], new: dict[str, Service]) -> None:
    """The group rules over the cluster's services with ``new`` ones added (or replacing theirs):
    SpecError with what the new ones bring, nothing when they fit."""
    others = {n: s for n, s in others.items() if n not in new}
    known = check_cluster_rules(ClusterSpec.model_construct(services=others))
    combined = check_cluster_rules(ClusterSpec.model_construct(services={**others, **new}))
    problems = [SpecProblem(message, ".".join(str(p) for p in path))
                for path, message in combined if (path, message) not in known]
    if problems:
        raise SpecError(problems)
