"""Deploy in the web UI (spec §6): the project's Deploy tab (nodes, aliases, models and the forms
that create them), a node page and an alias page.

Forms post here and call the domain, as the other pages do. What the browser reads often or
sends to an instance (charts, logs, the Request console) is fetched from the JSON API by
``static/deploy.js``: the API already shapes those answers, and a test request never passes
through a page render.
"""

from __future__ import annotations

import shlex
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from sqlalchemy import func, select

from atoll.domain import access, deploy, model_registry, node_endpoint, tenancy
from atoll.domain.access import Action
from atoll.errors import DomainError, Invalid, NotFound
from atoll.states import InstanceStatus, NodeDesired, NodeStatus
from atoll.store.tables import Alias, Community, Node, NodeInstance, Project
from atoll.web import queries
from atoll.web.context import FormError, WebCtx, WebRoute, redirect, render, signed_in
from atoll.web.pages_community import crumbs_for
from atoll.web.project_shell import configuration_choices, project_page, tab_view

router = APIRouter(route_class=WebRoute, include_in_schema=False)
Ctx = Annotated[WebCtx, Depends(signed_in)]
NO_ERROR = FormError("", None, "")
STATUS_CLASS: dict[str, str] = {
    NodeStatus.HEALTHY: "ok",
    NodeStatus.UNHEALTHY: "bad",
    NodeStatus.SUSPENDED: "muted",
    NodeStatus.DELETING: "muted",
}
HEALTH_FIELDS = [  # (key, label, parse as)
    ("path", "Path", str),
    ("intervalS", "Interval, s", float),
    ("timeoutS", "Timeout, s", float),
    ("healthyThreshold", "Checks passed", int),
    ("unhealthyThreshold", "Failed checks", int),
]
ENDPOINT_FIELDS = [  # (key, label, parse as): domain/node_endpoint.py
    ("type", "Protocol (HTTP, HTTP2, GRPC)", str),
    ("timeoutS", "Request timeout, s", int),
    ("idleTimeoutS", "Idle timeout, s", int),
    ("maxConcurrency", "Requests at once per instance (0: any)", int),
    ("queueLength", "Queue length", int),
    ("queueTimeoutS", "Queue timeout, s", int),
    ("maxBodyMb", "Largest request body, MB", int),
]
NODE_SETTINGS = {"description", "configuration", "min_instances", "max_instances", "env", "health_check"}
NODE_FORM = ["name", "description", "kind", "command", "models", "configuration", "minInstances",
             "maxInstances", "env", "healthCheck.path"]  # fmt: skip


# --- shared pieces -----------------------------------------------------------------------------


def _common(ctx: WebCtx, project: Project) -> dict[str, Any]:
    return {
        "p": project,
        "can_use": access.can(ctx.db, ctx.me, Action.PROJECT_USE, project),
        "gateway_url": _gateway_url(ctx),
        "status_class": STATUS_CLASS,
        "api": f"/api/v1/projects/{project.id}",
    }


def _gateway_url(ctx: WebCtx) -> str:
    """Where callers reach the gateway, for curl samples: ATOLL_PUBLIC_GATEWAY_URL, else this
    host on the gateway's port when Atoll listens on every interface."""
    s = ctx.settings
    if not s.public_gateway_url and s.host in ("0.0.0.0", "::", ""):
        return f"{ctx.request.url.scheme}://{ctx.request.url.hostname}:{s.gateway_port}"
    return s.gateway_url


def _crumbs(ctx: WebCtx, project: Project, label: str) -> list[dict[str, str]]:
    c = queries.community_of(ctx.db, project)
    crumbs = crumbs_for(ctx, c, link_self=access.can(ctx.db, ctx.me, Action.COMMUNITY_VIEW, c))
    crumbs.append({"label": project.name, "url": f"/projects/{project.id}?tab=deploy"})
    crumbs.append({"label": label, "url": ""})
    return crumbs


def _configurations(ctx: WebCtx, project: Project, can_use: bool) -> list[dict[str, Any]]:
    """The catalogue for the create and change forms (only people who may use them see them)."""
    return configuration_choices(ctx, queries.community_of(ctx.db, project)) if can_use else []


def _healthy_counts(ctx: WebCtx, nodes: list[Node]) -> dict[str, int]:
    if not nodes:
        return {}
    q = (
        select(NodeInstance.node_id, func.count())
        .where(NodeInstance.node_id.in_([n.id for n in nodes]), NodeInstance.status == InstanceStatus.HEALTHY)
        .group_by(NodeInstance.node_id)
    )
    return {node_id: int(n) for node_id, n in ctx.db.execute(q)}


def _env_text(env: dict[str, str]) -> str:
    return "\n".join(f"{k}={v}" for k, v in env.items())


def _parse_env(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise Invalid(f"env: write one NAME=value per line (got {line.strip()!r})", field="env")
        out[key.strip()] = value
    return out


def _parse_number(text: str, field: str, kind: type) -> Any:
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise Invalid(f"{field} must be {what} (got {text!r})", field=field) from None


def _runs(node: Node) -> str:
    """What a node's instances run, in a line."""
    if node.kind == "command":
        return shlex.join(node.spec.get("command", []))
    if node.kind == "image":
        return f"{node.spec.get('image')} (port {node.spec.get('port')})"
    return ", ".join(node.spec.get("modelRefs") or node.spec.get("models", []))


# --- the project's Deploy tab --------------------------------------------------------------------


def deploy_view(ctx: WebCtx, project: Project, error: FormError = NO_ERROR) -> dict[str, Any]:
    """What the project page's Deploy tab shows."""
    nodes = deploy.list_nodes(ctx.db, ctx.me, project.id)
    values = _common(ctx, project)
    values.update(
        nodes=nodes,
        healthy=_healthy_counts(ctx, nodes),
        runs={n.id: _runs(n) for n in nodes},
        node_names={n.id: n.name for n in nodes},
        aliases=deploy.list_aliases(ctx.db, ctx.me, project.id),
        models=model_registry.list_models(ctx.db, ctx.me, project.id),
        error=error,
        configurations=_configurations(ctx, project, values["can_use"]),
    )
    return values


def _tab(ctx: WebCtx, project_id: str, error: FormError, status: int) -> Response:
    return project_page(ctx, project_id, "deploy", error=error, status=status)


@router.post("/projects/{project_id}/nodes")
def create_node(project_id: str, ctx: Ctx) -> Response:
    values: dict[str, Any] = {k: ctx.value(k) for k in NODE_FORM}
    values["models"] = ctx.values("models")
    try:
        kind = values["kind"] or "command"
        command = None
        if kind == "command":
            try:
                command = shlex.split(values["command"])
            except ValueError as e:
                raise Invalid(f"command: {e}", field="command") from None
            if not command:
                raise Invalid("command: the program that serves HTTP on $PORT is required", field="command")
        elif not values["models"]:
            raise Invalid("models: pick at least one saved model", field="models")
        health = {"path": values["healthCheck.path"]} if values["healthCheck.path"] else None
        inp = deploy.NodeInput(
            name=values["name"],
            description=values["description"],
            configuration=values["configuration"] or None,
            min_instances=_parse_number(values["minInstances"], "minInstances", int),
            max_instances=_parse_number(values["maxInstances"], "maxInstances", int),
            command=command,
            models=values["models"] if kind == "model" else None,
            env=_parse_env(values["env"]),
            health_check=health,
            given={"command"} if kind == "command" else {"models"},
        )
        node = deploy.create_node(ctx.db, ctx.me, project_id, inp)
        ctx.commit()
    except NotFound:
        raise
    except DomainError as e:
        ctx.rollback()
        return _tab(ctx, project_id, FormError.of("node", e, values), e.status)
    ctx.request.app.state.services.wake("nodes")
    return redirect(ctx, f"/projects/{project_id}/nodes/{node.id}", flash=f"Node {node.name} created")


@router.post("/projects/{project_id}/aliases")
def create_alias(project_id: str, ctx: Ctx) -> Response:
    values: dict[str, Any] = {"name": ctx.value("name"), "public": ctx.value("public") == "on"}
    project = tenancy.get_project(ctx.db, ctx.me, project_id)
    try:
        entries = []
        for n in deploy.list_nodes(ctx.db, ctx.me, project.id):
            text = values[f"weight.{n.id}"] = ctx.value(f"weight.{n.id}")
            if text:
                entries.append({"nodeId": n.id, "weight": _parse_number(text, "nodes", int)})
        alias = deploy.create_alias(
            ctx.db, ctx.me, project_id, name=values["name"], nodes=entries, public=values["public"]
        )
        ctx.commit(wake="dataplane")
    except NotFound:
        raise
    except DomainError as e:
        ctx.rollback()
        return _tab(ctx, project_id, FormError.of("alias", e, values), e.status)
    return redirect(ctx, f"/projects/{project_id}/aliases/{alias.id}", flash=f"Alias {alias.name} created")


# --- node page ---------------------------------------------------------------------------------


def _node_view(ctx: WebCtx, project: Project, node: Node) -> dict[str, Any]:
    values = _common(ctx, project)
    insts = deploy.instances(ctx.db, node)
    values.update(
        node=node,
        runs=_runs(node),
        instances=insts,
        healthy=sum(1 for i in insts if i.status == InstanceStatus.HEALTHY),
        suspended=node.desired == NodeDesired.SUSPEND,
        deleting=node.desired == NodeDesired.DELETE,
        env_text=_env_text(node.spec.get("env", {})),
        health=node.spec.get("healthCheck", {}),
        health_fields=HEALTH_FIELDS,
        endpoint=node_endpoint.of(node.spec),
        endpoint_fields=ENDPOINT_FIELDS,
        configurations=_configurations(ctx, project, values["can_use"]),
        notice=None,
        error=NO_ERROR,
    )
    return values


def node_page(ctx: WebCtx, project_id: str, ref: str, *, status: int = 200, **extra: Any) -> Response:
    project = tenancy.get_project(ctx.db, ctx.me, project_id)
    node = deploy.find_node(ctx.db, project, ref)
    values = {**_node_view(ctx, project, node), **extra}
    if ctx.hx_target("node-live"):
        return render(ctx, "node_live.html", status=status, **values)
    if ctx.hx_target("node-settings"):
        return render(ctx, "node_settings.html", status=status, **values)
    return render(ctx, "node.html", status=status, crumbs=_crumbs(ctx, project, node.name), **values)


@router.get("/projects/{project_id}/nodes/{node}")
def node_get(project_id: str, node: str, ctx: Ctx) -> Response:
    return node_page(ctx, project_id, node)


def _node_act(ctx: WebCtx, project_id: str, ref: str, action: str) -> Response:
    fn = {"suspend": deploy.suspend_node, "resume": deploy.resume_node, "delete": deploy.delete_node}[action]
    try:
        node = fn(ctx.db, ctx.me, project_id, ref)
        name = node.name
        ctx.commit()
    except NotFound:
        raise
    except DomainError as e:
        ctx.rollback()
        return node_page(ctx, project_id, ref, status=e.status, notice=f"error: {e.detail}")
    ctx.request.app.state.services.wake("nodes")
    if action == "delete":
        return redirect(ctx, f"/projects/{project_id}?tab=deploy", flash=f"Node {name} is being deleted")
    notice = f"Node {name} " + ("suspended" if action == "suspend" else "resumed")
    if ctx.htmx:
        return node_page(ctx, project_id, ref, notice=notice)
    return redirect(ctx, f"/projects/{project_id}/nodes/{ref}", flash=notice)


@router.post("/projects/{project_id}/nodes/{node}/suspend")
def suspend(project_id: str, node: str, ctx: Ctx) -> Response:
    return _node_act(ctx, project_id, node, "suspend")


@router.post("/projects/{project_id}/nodes/{node}/resume")
def resume(project_id: str, node: str, ctx: Ctx) -> Response:
    return _node_act(ctx, project_id, node, "resume")


@router.post("/projects/{project_id}/nodes/{node}/delete")
def delete(project_id: str, node: str, ctx: Ctx) -> Response:
    return _node_act(ctx, project_id, node, "delete")


@router.post("/projects/{project_id}/nodes/{node}/settings")
def node_settings(project_id: str, node: str, ctx: Ctx) -> Response:
    keys = ["description", "configuration", "minInstances", "maxInstances", "env"]
    keys += [f"healthCheck.{k}" for k, _, _ in HEALTH_FIELDS]
    keys += [f"endpoint.{k}" for k, _, _ in ENDPOINT_FIELDS]
    values = {k: ctx.value(k) for k in keys}
    try:
        health = {
            k: _parse_number(values[f"healthCheck.{k}"], f"healthCheck.{k}", kind)
            for k, _, kind in HEALTH_FIELDS
        }
        endpoint = {
            k: _parse_number(values[f"endpoint.{k}"], f"endpoint.{k}", kind) for k, _, kind in ENDPOINT_FIELDS
        }
        inp = deploy.NodeInput(
            description=values["description"],
            configuration=values["configuration"] or None,
            min_instances=_parse_number(values["minInstances"], "minInstances", int),
            max_instances=_parse_number(values["maxInstances"], "maxInstances", int),
            env=_parse_env(values["env"]),
            health_check={k: v for k, v in health.items() if v is not None},
            endpoint={k: v for k, v in endpoint.items() if v is not None},
            given={*NODE_SETTINGS, "endpoint"},
        )
        deploy.update_node(ctx.db, ctx.me, project_id, node, inp)
        ctx.commit()
    except NotFound:
        raise
    except DomainError as e:
        ctx.rollback()
        return node_page(ctx, project_id, node, status=e.status, error=FormError.of("node", e, values))
    ctx.request.app.state.services.wake("nodes")
    if ctx.htmx:
        return node_page(ctx, project_id, node, notice="Configuration saved")
    return redirect(ctx, f"/projects/{project_id}/nodes/{node}", flash="Configuration saved")


# --- alias page --------------------------------------------------------------------------------


def _alias_view(ctx: WebCtx, project: Project, alias: Alias) -> dict[str, Any]:
    values = _common(ctx, project)
    nodes = deploy.list_nodes(ctx.db, ctx.me, project.id)
    rows = _rows(nodes, [(e["nodeId"], e["weight"]) for e in alias.nodes])
    values.update(alias=alias, rows=rows, nodes=nodes, notice=None, error=NO_ERROR)
    return values


def _rows(nodes: list[Node], entries: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """The weight editor's rows: (node id, weight) with the node's name and status."""
    by_id = {n.id: n for n in nodes}
    return [
        {
            "nodeId": nid,
            "name": by_id[nid].name if nid in by_id else nid,
            "status": by_id[nid].status if nid in by_id else NodeStatus.DELETED,
            "weight": weight,
        }
        for nid, weight in entries
    ]


def alias_page(ctx: WebCtx, project_id: str, ref: str, *, status: int = 200, **extra: Any) -> Response:
    project = tenancy.get_project(ctx.db, ctx.me, project_id)
    alias = deploy.find_alias(ctx.db, project, ref)
    values = {**_alias_view(ctx, project, alias), **extra}
    weights = [str(r["weight"]).strip() for r in values["rows"]]
    values["total"] = sum(int(w) for w in weights if w.isdigit())
    if ctx.hx_target("alias-editor"):
        return render(ctx, "alias_editor.html", status=status, **values)
    if ctx.hx_target("alias-access"):
        return render(ctx, "alias_access.html", status=status, **values)
    return render(ctx, "alias.html", status=status, crumbs=_crumbs(ctx, project, alias.name), **values)


@router.get("/projects/{project_id}/aliases/{alias}")
def alias_get(project_id: str, alias: str, ctx: Ctx) -> Response:
    return alias_page(ctx, project_id, alias)


def _alias_saved(ctx: WebCtx, project_id: str, alias: str, notice: str) -> Response:
    if ctx.htmx:
        return alias_page(ctx, project_id, alias, notice=notice)
    return redirect(ctx, f"/projects/{project_id}/aliases/{alias}", flash=notice)


@router.post("/projects/{project_id}/aliases/{alias}/nodes")
def alias_nodes(project_id: str, alias: str, ctx: Ctx) -> Response:
    ids, weights = ctx.values("nodeId"), ctx.values("weight")
    try:
        entries = [
            {"nodeId": nid, "weight": _parse_number(w.strip(), f"nodes[{i}].weight", int)}
            for i, (nid, w) in enumerate(zip(ids, weights, strict=False))
        ]
        deploy.update_alias(ctx.db, ctx.me, project_id, alias, nodes=entries)
        ctx.commit(wake="dataplane")
    except NotFound:
        raise
    except DomainError as e:
        ctx.rollback()
        # Draw the editor as the user left it, with the domain's message next to it.
        rows = _rows(deploy.list_nodes(ctx.db, ctx.me, project_id), list(zip(ids, weights, strict=False)))
        error = FormError.of("weights", e)
        return alias_page(ctx, project_id, alias, status=e.status, rows=rows, error=error)
    return _alias_saved(ctx, project_id, alias, "Weights saved: the gateway switches within a second")


@router.post("/projects/{project_id}/aliases/{alias}/access")
def alias_access(project_id: str, alias: str, ctx: Ctx) -> Response:
    public = ctx.value("public") in ("on", "true")
    a = deploy.update_alias(ctx.db, ctx.me, project_id, alias, public=public)
    ctx.commit(wake="dataplane")
    what = "public: anyone may call it" if a.public else "private: callers need an Atoll token"
    return _alias_saved(ctx, project_id, alias, f"Alias {a.name} is {what}")


@router.post("/projects/{project_id}/aliases/{alias}/delete")
def alias_delete(project_id: str, alias: str, ctx: Ctx) -> Response:
    a = deploy.get_alias(ctx.db, ctx.me, project_id, alias)
    name = a.name
    deploy.delete_alias(ctx.db, ctx.me, project_id, alias)
    ctx.commit(wake="dataplane")
    return redirect(ctx, f"/projects/{project_id}?tab=deploy", flash=f"Alias {name} deleted")


@tab_view("deploy", "models")
def _deploy_tab(ctx: WebCtx, project: Project, c: Community, error: FormError) -> dict[str, Any]:
    return deploy_view(ctx, project, error)
