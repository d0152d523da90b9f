"""Request bodies: JSON objects or cluster.yml text, told apart by Content-Type."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from veo.api.errors import TooLarge, UnsupportedMediaType
from veo.api.limits import body_limit
from veo.core.errors import SpecError, SpecProblem

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def is_yaml(request: Request) -> bool:
    return media_type(request) in YAML_TYPES


async def raw_text(request: Request) -> str:
    data = await request.body()
    limit = body_limit()  # the BodyLimit middleware refused larger bodies before they were read
    if limit and len(data) > limit:
        raise TooLarge(f"the body is {len(data)} bytes; at most {limit} are accepted")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError([SpecProblem("the body is not UTF-8 text")]) from None


async def json_body(request: Request) -> Any:
    """The JSON body, or a 422 naming the syntax error, or a 415 for another media type."""
    kind = media_type(request)
    if kind != "application/json" and not kind.endswith("+json"):
        raise UnsupportedMediaType(f"expected Content-Type application/json, got {kind or 'none'}")
    text = await raw_text(request)
    try:
        return json.loads(text)
    except ValueError as e:
        raise SpecError([SpecProblem(f"invalid JSON: {e}")]) from None


def yaml_content(example: str) -> dict:
    # the schema of the document the text holds (a client sends the YAML of such an object);
    # compose keys veo ignores are accepted too, with a warning
    return {"schema": {"$ref": "#/components/schemas/ClusterSpec"}, "example": example}


def request_body(json_ref: str | None, yaml_example: str | None, description: str) -> dict:
    """``openapi_extra`` documenting a raw body (read by the route, not by FastAPI)."""
    content: dict[str, Any] = {}
    if json_ref:
        content["application/json"] = {"schema": {"$ref": f"#/components/schemas/{json_ref}"}}
    if yaml_example:
        content["application/yaml"] = yaml_content(yaml_example)
    return {"requestBody": {"required": True, "description": description, "content": content}}
