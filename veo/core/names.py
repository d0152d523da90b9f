"""Identity: every name veo gives to something, in one place. Pure.

* an instance key, ``service#N`` — the one spelling everywhere (the REST API also accepts
  ``service:N`` as input and answers with ``service#N``);
* container names ``<cluster>_<service>_<instance>_g<generation>`` and the labels on them;
* Ray's side: the namespace, the Scheduler's name, per-node actor names, node labels;
* the default Docker host.
"""

from __future__ import annotations

import re

from veo.core.errors import SpecError, SpecProblem

# ---- instances -----------------------------------------------------------------------------------

KEY_SEP = "#"
_REF_RE = re.compile(r"^(?P<service>[a-zA-Z0-9][a-zA-Z0-9_.-]*)[#:](?P<instance>\d+)$")


def instance_key(service: str, instance: int) -> str:
    return f"{service}{KEY_SEP}{int(instance)}"


def split_key(key: str) -> tuple[str, int]:
    service, _, instance = key.rpartition(KEY_SEP)
    return service, int(instance)


def service_of(key: str) -> str:
    return key.rpartition(KEY_SEP)[0]


def parse_instance_ref(ref: str) -> tuple[str, int] | None:
    """``web#0`` or ``web:0`` -> ``("web", 0)``; anything else (a container id...) -> None."""
    m = _REF_RE.match(ref)
    return (m.group("service"), int(m.group("instance"))) if m else None


# ---- containers ----------------------------------------------------------------------------------

LABEL_MANAGED = "veo.managed"
LABEL_CLUSTER = "veo.cluster"
LABEL_SERVICE = "veo.service"
LABEL_INSTANCE = "veo.instance"
LABEL_GROUP = "veo.group"
LABEL_GROUP_ROLE = "veo.group-role"
LABEL_NODE = "veo.node"
LABEL_SPEC_HASH = "veo.spec-hash"
LABEL_GENERATION = "veo.generation"
LABEL_IMAGE_BUILD = "veo.image-build"  # on images veo built itself
LABEL_NETWORK = "veo.network"  # on networks veo made: the compose file's key for it

# The labels that say which veo container this is: a name clash with a container carrying the same
# values is a retry of our own create, anything else is a real conflict.
IDENTITY_LABELS = (
    LABEL_MANAGED,
    LABEL_CLUSTER,
    LABEL_SERVICE,
    LABEL_INSTANCE,
    LABEL_GENERATION,
    LABEL_SPEC_HASH,
)

_CONTAINER_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
CLUSTER_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9.-]*$")
_PARSE_RE = re.compile(r"^([a-zA-Z0-9][a-zA-Z0-9.-]*)_(.+)_(\d+)_g(\d+)$")


def _refuse(path: str, message: str) -> SpecError:
    return SpecError([SpecProblem(message=message, path=path)])


def container_name(cluster: str, service: str, instance: int, generation: int) -> str:
    """``<cluster>_<service>_<instance>_g<generation>``.

    Deterministic, so a retried create meets the first attempt's container (409) instead of
    making a twin. Cluster names cannot hold '_', which makes ``parse_container_name`` exact.
    """
    if not CLUSTER_NAME_RE.match(cluster):
        raise _refuse(
            "name",
            f"cluster name {cluster!r} cannot be used in container names: use letters, digits, "
            "'.', '-' (no '_', veo separates the parts of a container name with it)",
        )
    name = f"{cluster}_{service}_{int(instance)}_g{int(generation)}"
    if not _CONTAINER_NAME_RE.match(name):
        raise _refuse("name", f"{name!r} is not a valid Docker container name")
    return name


def parse_container_name(name: str) -> tuple[str, str, int, int] | None:
    """``(cluster, service, instance, generation)`` of a veo container name, else None.

    Accepts Docker's leading '/' (list and inspect report names that way).
    """
    m = _PARSE_RE.match(name.lstrip("/"))
    if not m:
        return None
    return m.group(1), m.group(2), int(m.group(3)), int(m.group(4))


# ---- Ray -----------------------------------------------------------------------------------------

ACTOR_NAMESPACE = "veo"
SCHEDULER_NAME = "veo-scheduler"
NODE_LABEL = "veo.node"  # a Ray node labelled veo.node=<name> is a veo node
ROLE_LABEL = "veo.role"


def actor_name(kind: str, node: str) -> str:
    """Readable names for the Ray dashboard: veo-agent-uno, veo-supervisor-uno, veo-health-uno."""
    return f"veo-{kind}-{node}"


# ---- the wire ------------------------------------------------------------------------------------

# a whole spec in the model's own JSON form (what `veo up --server` sends): a distinct media type,
# so a stray JSON body never replaces a cluster
SPEC_JSON = "application/vnd.veo.spec+json"


# ---- Docker --------------------------------------------------------------------------------------

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"


def docker_host_from(env: dict[str, str] | None = None) -> str:
    """The engine a process on this node talks to: ``DOCKER_HOST``, else Docker's default."""
    import os

    return (env if env is not None else os.environ).get("DOCKER_HOST") or DEFAULT_DOCKER_HOST
