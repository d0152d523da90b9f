"""``/api/nodes``: capacity, allocation and liveness; cordon, drain, expect and forget nodes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from veo.api.body import json_body, request_body
from veo.api.deps import get_client, require_token
from veo.api.errors import BODY, COMMON, CONFLICT, NOT_FOUND
from veo.api.links import NODE_ADDED, NODES_LISTED
from veo.api.schemas import Moving
from veo.core.bodies import validate_node
from veo.core.models import Node, NodeView

router = APIRouter(prefix="/api/nodes", tags=["nodes"], responses=COMMON,
                   dependencies=[Depends(require_token)])

ADD_BODY = request_body("Node", None, "The expected node: it becomes live when a Ray node "
                        "labelled veo.node=<name> joins")


@router.get("", response_model=list[NodeView], responses=NODES_LISTED, summary="List nodes")
def list_nodes(client: Any = Depends(get_client)) -> list[NodeView]:
    return client.nodes()


@router.post("", status_code=201, response_model=Node, openapi_extra=ADD_BODY,
             responses={**BODY, **NODE_ADDED}, summary="Expect a node")
async def add_node(request: Request, client: Any = Depends(get_client)) -> Node:
    node = validate_node(await json_body(request))
    await run_in_threadpool(client.add_node, node)
    return node


@router.get("/{name}", response_model=NodeView, responses=NOT_FOUND, summary="Get one node")
def get_node(name: str, client: Any = Depends(get_client)) -> NodeView:
    return client.node(name)


@router.delete("/{name}", response_model=Moving, responses={**NOT_FOUND, **CONFLICT},
               summary="Drain and forget a node")
def remove_node(name: str, client: Any = Depends(get_client)) -> Moving:
    """The Ray node itself keeps running; veo stops expecting it and moves its instances."""
    return Moving(node=name, moving=client.remove_node(name))


@router.post("/{name}/cordon", response_model=Moving, responses=NOT_FOUND,
             summary="Place nothing new on a node")
def cordon(name: str, client: Any = Depends(get_client)) -> Moving:
    client.cordon(name)
    return Moving(node=name)


@router.post("/{name}/uncordon", response_model=Moving, responses=NOT_FOUND,
             summary="Let placement use a node again")
def uncordon(name: str, client: Any = Depends(get_client)) -> Moving:
    client.uncordon(name)
    return Moving(node=name)


@router.post("/{name}/drain", response_model=Moving, responses={**NOT_FOUND, **CONFLICT},
             summary="Move everything off a node and cordon it")
def drain(name: str, client: Any = Depends(get_client)) -> Moving:
    """Refused (409, with the reasons) when some instance would fit nowhere else."""
    return Moving(node=name, moving=client.drain(name))
