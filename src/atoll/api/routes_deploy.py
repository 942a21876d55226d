"""Models, nodes and aliases (spec §6, §8.1): the control plane of deploy.

Calls to the deployed services go through the gateway (its own port), not through this API;
``nodes/{node}:request`` is the node page's test console, sent to one Healthy instance.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from atoll.api import schemas_deploy as d
from atoll.api.bounds import MAX_ID, MAX_LOG_CHUNK, MAX_LOG_OFFSET
from atoll.api.common import act
from atoll.api.deps import Ctx, CtxDep
from atoll.api.routes_jobs import STREAMS
from atoll.api.schemas_jobs import LogChunkOut
from atoll.domain import deploy, deploy_metrics, instance_runs, model_registry, workloads
from atoll.domain.access import Action
from atoll.errors import Conflict, Invalid, NotFound
from atoll.states import InstanceStatus, NodeDesired, NodeStatus
from atoll.store.tables import Alias, Node

router = APIRouter(tags=["deploy"])
MAX_TEST_BODY = 16 * 1024 * 1024


# --- models ------------------------------------------------------------------------------------


@router.get(
    "/projects/{project_id}/models", response_model=list[d.ModelOut], openapi_extra=act(Action.PROJECT_VIEW)
)
def list_models(
    project_id: str, ctx: CtxDep, name: str | None = Query(None, max_length=MAX_ID)
) -> list[d.ModelOut]:
    """Every version of the project's models, newest first per name."""
    return [
        d.ModelOut.model_validate(m) for m in model_registry.list_models(ctx.db, ctx.me, project_id, name)
    ]


@router.get(
    "/projects/{project_id}/models/{model}", response_model=d.ModelOut, openapi_extra=act(Action.PROJECT_VIEW)
)
def get_model(project_id: str, model: str, ctx: CtxDep) -> d.ModelOut:
    """A model by id, by name (its latest version) or by name:version."""
    return d.ModelOut.model_validate(model_registry.get_model(ctx.db, ctx.me, project_id, model))


@router.delete(
    "/projects/{project_id}/models/{model}", status_code=204, openapi_extra=act(Action.PROJECT_USE)
)
def delete_model(project_id: str, model: str, ctx: CtxDep) -> None:
    m = model_registry.get_model(ctx.db, ctx.me, project_id, model)
    model_registry.delete_model(ctx.db, ctx.me, project_id, m.id)
    ctx.commit(None)
    model_registry.remove_materialized(ctx.services.jobs.layout, m)


# --- nodes -------------------------------------------------------------------------------------


def node_out(db: Session, node: Node) -> d.NodeOut:
    out = d.NodeOut.model_validate(node)
    out.suspended = node.desired == NodeDesired.SUSPEND
    out.spec = {k: v for k, v in node.spec.items() if k != "modelRefs"}
    insts = deploy.instances(db, node)
    hosts = workloads.hosts_of(db, (i.workload_id for i in insts))
    out.instances = [
        d.InstanceOut.model_validate(i).model_copy(update={"host": hosts[i.workload_id]}) for i in insts
    ]
    return out


def _changed(ctx: Ctx, node: Node) -> d.NodeOut:
    """Commit a change to a node and have the node controller act on it now."""
    return ctx.commit_and_wake(node_out(ctx.db, node), "nodes")


def _node_input(body: d.NodeCreate | d.NodeUpdate) -> deploy.NodeInput:
    given = set(body.model_fields_set)
    return deploy.NodeInput(
        name=body.name,
        description=body.description,
        configuration=body.configuration,
        min_instances=body.min_instances,
        max_instances=body.max_instances,
        models=body.models,
        command=body.command,
        image=body.image,
        port=body.port,
        env=body.env,
        health_check=body.health_check.as_spec() if body.health_check else None,
        telemetry=body.telemetry.model_dump(exclude_none=True) if body.telemetry else None,
        endpoint=body.endpoint.as_spec() if body.endpoint else None,
        given=given,
    )


@router.get(
    "/projects/{project_id}/nodes", response_model=list[d.NodeOut], openapi_extra=act(Action.PROJECT_VIEW)
)
def list_nodes(project_id: str, ctx: CtxDep) -> list[d.NodeOut]:
    return [node_out(ctx.db, n) for n in deploy.list_nodes(ctx.db, ctx.me, project_id)]


@router.post(
    "/projects/{project_id}/nodes",
    response_model=d.NodeOut,
    status_code=201,
    openapi_extra=act(Action.PROJECT_USE),
)
def create_node(project_id: str, body: d.NodeCreate, ctx: CtxDep) -> d.NodeOut:
    """Deploy saved models, a command or an image; instances start in the background."""
    node = deploy.create_node(ctx.db, ctx.me, project_id, _node_input(body))
    return _changed(ctx, node)


@router.get(
    "/projects/{project_id}/nodes/{node}", response_model=d.NodeOut, openapi_extra=act(Action.PROJECT_VIEW)
)
def get_node(project_id: str, node: str, ctx: CtxDep) -> d.NodeOut:
    return node_out(ctx.db, deploy.get_node(ctx.db, ctx.me, project_id, node))


@router.patch(
    "/projects/{project_id}/nodes/{node}", response_model=d.NodeOut, openapi_extra=act(Action.PROJECT_USE)
)
def update_node(project_id: str, node: str, body: d.NodeUpdate, ctx: CtxDep) -> d.NodeOut:
    """Change a node; a change to what runs is rolled out one instance at a time."""
    n = deploy.update_node(ctx.db, ctx.me, project_id, node, _node_input(body))
    return _changed(ctx, n)


@router.post(
    "/projects/{project_id}/nodes/{node}:suspend",
    response_model=d.NodeOut,
    openapi_extra=act(Action.PROJECT_USE),
)
def suspend_node(project_id: str, node: str, ctx: CtxDep) -> d.NodeOut:
    """Stop the node's instances and their billing; resume brings them back."""
    n = deploy.suspend_node(ctx.db, ctx.me, project_id, node)
    return _changed(ctx, n)


@router.post(
    "/projects/{project_id}/nodes/{node}:resume",
    response_model=d.NodeOut,
    openapi_extra=act(Action.PROJECT_USE),
)
def resume_node(project_id: str, node: str, ctx: CtxDep) -> d.NodeOut:
    n = deploy.resume_node(ctx.db, ctx.me, project_id, node)
    return _changed(ctx, n)


@router.delete(
    "/projects/{project_id}/nodes/{node}",
    response_model=d.NodeOut,
    status_code=202,
    openapi_extra=act(Action.PROJECT_USE),
)
def delete_node(project_id: str, node: str, ctx: CtxDep) -> d.NodeOut:
    """Delete a node (refused while an alias gives it a share); its instances stop shortly."""
    n = deploy.delete_node(ctx.db, ctx.me, project_id, node)
    return _changed(ctx, n)


@router.get(
    "/projects/{project_id}/nodes/{node}/logs",
    response_model=LogChunkOut,
    openapi_extra=act(Action.PROJECT_VIEW),
)
def node_logs(
    project_id: str,
    node: str,
    ctx: CtxDep,
    instance: str | None = Query(None, max_length=MAX_ID),
    stream: str = Query("stdout", max_length=16),
    offset: int = Query(0, ge=0, le=MAX_LOG_OFFSET),
    limit: int = Query(1 << 20, ge=1, le=MAX_LOG_CHUNK),
    run: int = Query(0, ge=0, le=instance_runs.MAX_RUNS - 1, description="0: the latest, 1: the one before"),
) -> LogChunkOut:
    """A slice of one instance's log (the first instance's unless ``instance`` names one): of its
    latest run, or with ``run`` of an earlier one (``…/instances/{instance}/runs`` lists them), so a
    restarted instance shows what it printed before it crashed and, in its system stream, why."""
    if stream not in STREAMS:
        raise Invalid(f"stream must be one of {', '.join(STREAMS)}", field="stream")
    n = deploy.get_node(ctx.db, ctx.me, project_id, node)
    inst = instance_runs.find_instance(ctx.db, n, instance or None)
    if inst is None and run:
        raise NotFound(f"node {n.name!r} has no instances, so no run {run}", field="run")
    wid = instance_runs.workload_of(inst, run) if inst is not None else None
    logs = ctx.services.logs
    data, nxt = (b"", offset) if not wid or not logs.exists(wid) else logs.read(wid, stream, offset, limit)
    data = data[: len(data.decode("utf-8", "ignore").encode())]
    nxt = offset + len(data) if data else nxt
    return LogChunkOut(
        stream=stream,
        data=data.decode("utf-8", "replace"),
        offset=nxt,
        # An earlier run has ended: its log is whole, and a follower stops at its end.
        eof=inst is None or inst.status == InstanceStatus.DELETED or run > 0,
        status=inst.status if inst else "none",
    )


@router.get(
    "/projects/{project_id}/nodes/{node}/instances/{instance}/runs",
    response_model=list[d.InstanceRunOut],
    openapi_extra=act(Action.PROJECT_VIEW),
)
def instance_runs_list(project_id: str, node: str, instance: str, ctx: CtxDep) -> list[d.InstanceRunOut]:
    """An instance's runs, newest first (``run`` 0 is the latest), each with why it ended; their
    logs are ``nodes/{node}/logs?instance=…&run=…`` (the last 10 runs are kept)."""
    if len(instance) > MAX_ID:
        raise Invalid(f"an instance id has at most {MAX_ID} characters", field="instance")
    n = deploy.get_node(ctx.db, ctx.me, project_id, node)
    inst = instance_runs.get_instance(ctx.db, n, instance)
    return [d.InstanceRunOut.model_validate(r) for r in instance_runs.runs(ctx.db, inst)]


@router.get(
    "/projects/{project_id}/nodes/{node}/metrics",
    response_model=d.MetricsOut,
    openapi_extra=act(Action.PROJECT_VIEW),
)
def node_metrics(
    project_id: str, node: str, ctx: CtxDep, minutes: int = Query(15, ge=1, le=7 * 24 * 60)
) -> d.MetricsOut:
    """Requests/s, latency percentiles and HTTP codes through the gateway, per 10 s."""
    n = deploy.get_node(ctx.db, ctx.me, project_id, node)
    return _metrics(ctx.db, f"node:{n.id}", minutes)


@router.get(
    "/projects/{project_id}/nodes/{node}/telemetry",
    response_class=PlainTextResponse,
    openapi_extra=act(Action.PROJECT_VIEW),
)
def node_telemetry(project_id: str, node: str, ctx: CtxDep) -> PlainTextResponse:
    """The instances' own metrics (Prometheus text), as last scraped from their telemetry path,
    with ``node_id`` and ``instance_id`` labels; a model node's are its server's Triton metrics."""
    n = deploy.get_node(ctx.db, ctx.me, project_id, node)
    return PlainTextResponse(
        ctx.services.nodes.telemetry.exposition(n.id), media_type="text/plain; version=0.0.4"
    )


def _metrics(db: Session, target: str, minutes: int) -> d.MetricsOut:
    points = [
        d.MetricPoint(
            at=p.at,
            requests_per_s=p.requests_per_s,
            p50_ms=p.quantile_ms(0.5),
            p95_ms=p.quantile_ms(0.95),
            p99_ms=p.quantile_ms(0.99),
            codes=p.codes,
        )
        for p in deploy_metrics.series(db, target, minutes)
    ]
    return d.MetricsOut(target=target, bucket_s=deploy_metrics.BUCKET_S, points=points)


@router.post(
    "/projects/{project_id}/nodes/{node}:request",
    response_model=d.TestResponse,
    openapi_extra=act(Action.PROJECT_USE),
)
def test_request(project_id: str, node: str, body: d.TestRequest, ctx: CtxDep) -> d.TestResponse:
    """Send one test request to a Healthy instance of the node (the Request tab)."""
    if not body.path.startswith("/"):
        raise Invalid("path must start with /", field="path")
    n = deploy.get_node(ctx.db, ctx.me, project_id, node, Action.PROJECT_USE)
    inst = next((i for i in deploy.instances(ctx.db, n) if i.status == InstanceStatus.HEALTHY), None)
    if inst is None or inst.port is None:
        raise Conflict(f"node {n.name!r} has no Healthy instance to send the request to")
    host = workloads.host_of(ctx.db, inst.workload_id)
    content: bytes | None = None
    headers = dict(body.headers)
    if body.body is not None:
        content = body.body.encode() if isinstance(body.body, str) else json.dumps(body.body).encode()
        if not isinstance(body.body, str):
            headers.setdefault("content-type", "application/json")
    if content is not None and len(content) > MAX_TEST_BODY:
        raise Invalid("body: requests are capped at 16 MB", field="body")
    started = time.perf_counter()
    with httpx.Client(trust_env=False, timeout=60) as client:
        try:
            r = client.request(
                body.method, f"http://{host}:{inst.port}{body.path}", content=content, headers=headers
            )
        except httpx.HTTPError as e:
            raise Conflict(f"the instance did not answer: {type(e).__name__}") from e
    return d.TestResponse(
        status=r.status_code,
        headers=dict(r.headers),
        body=r.content[: 1 << 20].decode("utf-8", "replace"),
        elapsed_ms=round((time.perf_counter() - started) * 1000, 2),
        instance_id=inst.id,
    )


# --- aliases -----------------------------------------------------------------------------------


def alias_out(db: Session, a: Alias) -> d.AliasOut:
    ids = [e["nodeId"] for e in a.nodes]
    nodes = {n.id: n for n in db.scalars(select(Node).where(Node.id.in_(ids)))} if ids else {}
    return d.AliasOut(
        id=a.id,
        project_id=a.project_id,
        name=a.name,
        nodes=[
            d.AliasNodeOut(
                node_id=e["nodeId"],
                node_name=nodes[e["nodeId"]].name if e["nodeId"] in nodes else "",
                weight=e["weight"],
                status=nodes[e["nodeId"]].status if e["nodeId"] in nodes else NodeStatus.DELETED,
            )
            for e in a.nodes
        ],
        metadata=a.meta or {},
        public=a.public,
        created_by_id=a.created_by,
        created_at=a.created_at,
        updated_at=a.updated_at,
    )


def _entries(nodes: list[d.AliasNodeIn]) -> list[dict[str, Any]]:
    return [{"nodeId": e.node_id, "weight": e.weight} for e in nodes]


@router.get(
    "/projects/{project_id}/aliases", response_model=list[d.AliasOut], openapi_extra=act(Action.PROJECT_VIEW)
)
def list_aliases(project_id: str, ctx: CtxDep) -> list[d.AliasOut]:
    return [alias_out(ctx.db, a) for a in deploy.list_aliases(ctx.db, ctx.me, project_id)]


@router.post(
    "/projects/{project_id}/aliases",
    response_model=d.AliasOut,
    status_code=201,
    openapi_extra=act(Action.PROJECT_USE),
)
def create_alias(project_id: str, body: d.AliasCreate, ctx: CtxDep) -> d.AliasOut:
    """Publish nodes under a stable name, splitting requests by percentage."""
    a = deploy.create_alias(
        ctx.db,
        ctx.me,
        project_id,
        name=body.name,
        nodes=_entries(body.nodes),
        metadata=body.metadata,
        public=body.public,
    )
    return ctx.commit_and_wake(alias_out(ctx.db, a), "dataplane")  # the route at once


@router.get(
    "/projects/{project_id}/aliases/{alias}",
    response_model=d.AliasOut,
    openapi_extra=act(Action.PROJECT_VIEW),
)
def get_alias(project_id: str, alias: str, ctx: CtxDep) -> d.AliasOut:
    return alias_out(ctx.db, deploy.get_alias(ctx.db, ctx.me, project_id, alias))


@router.patch(
    "/projects/{project_id}/aliases/{alias}", response_model=d.AliasOut, openapi_extra=act(Action.PROJECT_USE)
)
def update_alias(project_id: str, alias: str, body: d.AliasUpdate, ctx: CtxDep) -> d.AliasOut:
    """Change nodes and shares in one step: the gateway switches at once, no request fails."""
    a = deploy.update_alias(
        ctx.db,
        ctx.me,
        project_id,
        alias,
        nodes=_entries(body.nodes) if body.nodes is not None else None,
        metadata=body.metadata,
        public=body.public,
    )
    return ctx.commit_and_wake(alias_out(ctx.db, a), "dataplane")  # the route at once


@router.delete(
    "/projects/{project_id}/aliases/{alias}", status_code=204, openapi_extra=act(Action.PROJECT_USE)
)
def delete_alias(project_id: str, alias: str, ctx: CtxDep) -> None:
    deploy.delete_alias(ctx.db, ctx.me, project_id, alias)
    ctx.commit_and_wake(None, "dataplane")


@router.get(
    "/projects/{project_id}/aliases/{alias}/metrics",
    response_model=d.MetricsOut,
    openapi_extra=act(Action.PROJECT_VIEW),
)
def alias_metrics(
    project_id: str, alias: str, ctx: CtxDep, minutes: int = Query(15, ge=1, le=7 * 24 * 60)
) -> d.MetricsOut:
    a = deploy.get_alias(ctx.db, ctx.me, project_id, alias)
    return _metrics(ctx.db, f"alias:{a.id}", minutes)
