"""OpenAPI links: which answer names what the next call can use (a created service's name, a
listed container's key). Clients and schemathesis's stateful runs follow them from a create to the
reads, changes and delete of the same resource."""

from __future__ import annotations


def _ref(path: str, method: str) -> str:
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method


def links(source: str, targets: dict[str, tuple[str, str, str]]) -> dict:
    """``{name: (method, path, parameter)}``: each target's ``parameter`` is ``source`` (a runtime
    expression such as ``$response.body#/name``)."""
    return {"links": {name: {"operationRef": _ref(path, method), "parameters": {param: source}}
                      for name, (method, path, param) in targets.items()}}


SERVICE = "/api/services/{name}"
NODE = "/api/nodes/{name}"
CONTAINER = "/api/containers/{ref}"

SERVICE_TARGETS = {"GetService": ("get", SERVICE, "name"),
                   "ReplaceService": ("put", SERVICE, "name"),
                   "RemoveService": ("delete", SERVICE, "name"),
                   "ListItsContainers": ("get", "/api/containers", "service"),
                   "History": ("get", SERVICE + "/history", "name")}
NODE_TARGETS = {"GetNode": ("get", NODE, "name"), "RemoveNode": ("delete", NODE, "name"),
                "Cordon": ("post", NODE + "/cordon", "name"),
                "Uncordon": ("post", NODE + "/uncordon", "name"),
                "Drain": ("post", NODE + "/drain", "name")}
CONTAINER_TARGETS = {"GetContainer": ("get", CONTAINER, "ref"),
                     "Logs": ("get", CONTAINER + "/logs", "ref"),
                     "Stats": ("get", CONTAINER + "/stats", "ref"),
                     "Restart": ("post", CONTAINER + "/restart", "ref")}

SERVICE_CREATED = {201: links("$response.body#/created/0", SERVICE_TARGETS)}
SERVICES_LISTED = {200: links("$response.body#/0/name", SERVICE_TARGETS)}
NODE_ADDED = {201: links("$response.body#/name", NODE_TARGETS)}
NODES_LISTED = {200: links("$response.body#/0/name", NODE_TARGETS)}
CONTAINERS_LISTED = {200: links("$response.body#/0/key", CONTAINER_TARGETS)}
