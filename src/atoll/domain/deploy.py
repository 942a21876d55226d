"""Nodes and aliases as the domain sees them (spec §6.1, §6.3): create, change, suspend, delete.

A node runs ``minInstances`` instances of one of three things: the built-in model server with
saved models (``models``), a command of the project's (``command``, listening on ``$PORT``), or a
Docker image (``image``). The node controller turns them into Workloads, checks their health and
replaces them one at a time when the node changes. An alias splits requests across nodes by
percentage; the gateway reads both from the store and follows changes within a second.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from atoll.domain import model_registry, node_endpoint, tenancy
from atoll.domain.access import Action, Principal
from atoll.domain.node_checks import HEALTH_DEFAULTS as HEALTH_DEFAULTS
from atoll.domain.node_checks import check_port, health, telemetry
from atoll.domain.notebooks import choose_configuration, require_balance
from atoll.domain.validation import check_description, check_name
from atoll.errors import Conflict, Invalid, NotFound
from atoll.states import InstanceStatus, NodeDesired, NodeStatus
from atoll.store.tables import Alias, Node, NodeInstance, Project, utcnow

MAX_INSTANCES = 16
MAX_MODELS = 16
ALIAS_PREFIX = "datasphere.user."  # DataSphere's alias names carry it; accepted and dropped
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
RESERVED_ENV = {"PORT", "PATH", "HOME", "PYTHONPATH", "CUDA_VISIBLE_DEVICES"}
_NOT_RUN = ("healthCheck", "telemetry", "endpoint")  # spec parts an instance does not see


@dataclass
class NodeInput:
    """What a caller may set on a node; None means "not given" (keep it on update)."""

    name: str | None = None
    description: str | None = None
    configuration: str | None = None
    min_instances: int | None = None
    max_instances: int | None = None
    models: list[str] | None = None
    command: list[str] | None = None
    image: str | None = None
    port: int | None = None
    env: dict[str, str] | None = None
    health_check: dict[str, Any] | None = None
    telemetry: dict[str, Any] | None = None
    endpoint: dict[str, Any] | None = None
    given: set[str] = field(default_factory=set)


def _env(value: dict[str, str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in (value or {}).items():
        if not ENV_NAME_RE.match(k) or k in RESERVED_ENV or k.startswith("ATOLL_"):
            raise Invalid(f"env: {k!r} is not a name a node may set", field="env")
        if not isinstance(v, str) or len(v) > 8192:
            raise Invalid(f"env.{k} must be a string of at most 8 KiB", field=f"env.{k}")
        out[k] = v
    return out


def _spec(db: Session, project: Project, inp: NodeInput, old: dict[str, Any] | None) -> tuple[str, dict]:
    """Check what an instance runs; returns (kind, spec). On update, unset parts keep old values."""
    old = old or {}
    sources = {
        "models": inp.models if "models" in inp.given else old.get("modelRefs"),
        "command": inp.command if "command" in inp.given else old.get("command"),
        "image": inp.image if "image" in inp.given else old.get("image"),
    }
    named = [k for k, v in sources.items() if v]
    if sources["image"] and named == ["command", "image"]:
        named = ["image"]  # an image with a command: the command runs in the image
    if len(named) != 1:
        raise Invalid(
            "a node runs exactly one of: models (saved models on the model server), command (a "
            "program serving HTTP on $PORT) or image (a Docker image)",
            field="models" if not named else named[1],
        )
    kind = {"models": "model", "command": "command", "image": "image"}[named[0]]
    spec: dict[str, Any] = {}
    if kind == "model":
        refs = list(sources["models"] or [])
        if len(refs) > MAX_MODELS:
            raise Invalid(f"models: at most {MAX_MODELS} per node", field="models")
        found = []
        for i, ref in enumerate(refs):
            try:
                found.append(model_registry.find(db, project, str(ref)))
            except NotFound as e:
                raise Invalid(e.detail, field=f"models[{i}]") from e
        if len({m.name for m in found}) != len(found):
            raise Invalid("models: one version per model name on a node", field="models")
        spec["models"] = [m.id for m in found]
        spec["modelRefs"] = refs
    elif kind == "command":
        cmd = sources["command"]
        if not isinstance(cmd, list) or not cmd or not all(isinstance(a, str) and a for a in cmd):
            raise Invalid("command must be a non-empty list of arguments", field="command")
        spec["command"] = cmd
    else:
        image = sources["image"]
        if not isinstance(image, str) or not re.match(r"^[\w][\w.:/@-]{0,254}$", image):
            raise Invalid(
                f"image must be an image reference such as repo/name:tag (got {image!r})", field="image"
            )
        spec["image"] = image
        cmd = sources["command"]
        if cmd:
            if not isinstance(cmd, list) or not all(isinstance(a, str) and a for a in cmd):
                raise Invalid("command must be a list of arguments", field="command")
            spec["command"] = cmd
        port = inp.port if inp.port is not None else old.get("port")
        if port is None:
            raise Invalid("port: the port the image's server listens on is required", field="port")
        spec["port"] = check_port(port, "port")
    spec["env"] = _env(inp.env if inp.env is not None else old.get("env"))
    # A field given changes that field (as JSON merge patch does); the others stay.
    health_given = {**(old.get("healthCheck") or {}), **(inp.health_check or {})}
    spec["healthCheck"] = health(health_given, kind)
    watched = telemetry(inp.telemetry if inp.telemetry is not None else old.get("telemetry"))
    if watched:
        spec["telemetry"] = watched
    # One field given changes one setting; the rest stay as they were.
    spec["endpoint"] = node_endpoint.endpoint(inp.endpoint, old.get("endpoint"))
    return kind, spec


def _counts(lo: int | None, hi: int | None) -> tuple[int, int]:
    lo = 1 if lo is None else lo
    hi = max(lo, 1) if hi is None else hi
    if not 0 <= lo <= MAX_INSTANCES:
        raise Invalid(f"minInstances must be 0-{MAX_INSTANCES}", field="minInstances")
    if not lo <= hi <= MAX_INSTANCES or hi < 1:
        raise Invalid(
            f"maxInstances must be at least minInstances and 1-{MAX_INSTANCES}", field="maxInstances"
        )
    return lo, hi


# --- nodes -------------------------------------------------------------------------------------


def find_node(db: Session, project: Project, ref: str) -> Node:
    """A node of the project by id or name."""
    node = db.get(Node, ref) if ref.startswith("node-") else None
    if node is None:
        node = db.scalar(select(Node).where(Node.project_id == project.id, Node.name == ref))
    if node is None or node.project_id != project.id:
        raise NotFound(f"node {ref!r} not found in project {project.id!r}")
    return node


def list_nodes(db: Session, p: Principal, project_id: str) -> list[Node]:
    project = tenancy.get_project(db, p, project_id)
    return list(db.scalars(select(Node).where(Node.project_id == project.id).order_by(Node.name)))


def get_node(
    db: Session, p: Principal, project_id: str, ref: str, action: Action = Action.PROJECT_VIEW
) -> Node:
    return find_node(db, tenancy.get_project(db, p, project_id, action), ref)


def instances(db: Session, node: Node, *, finished: bool = False) -> list[NodeInstance]:
    q = select(NodeInstance).where(NodeInstance.node_id == node.id)
    if not finished:
        q = q.where(NodeInstance.status != InstanceStatus.DELETED)
    return list(db.scalars(q.order_by(NodeInstance.created_at)))


def create_node(db: Session, p: Principal, project_id: str, inp: NodeInput) -> Node:
    """A new node (project Developer and up); the controller starts its instances."""
    project = tenancy.get_project(db, p, project_id, Action.PROJECT_USE)
    name = check_name(inp.name or "", "name")
    if db.scalar(select(Node.id).where(Node.project_id == project.id, Node.name == name)):
        raise Conflict(f"a node named {name!r} already exists in this project", field="name")
    require_balance(project)
    kind, spec = _spec(db, project, inp, None)
    lo, hi = _counts(inp.min_instances, inp.max_instances)
    node = Node(
        project_id=project.id,
        name=name,
        description=check_description(inp.description or ""),
        kind=kind,
        spec=spec,
        configuration=choose_configuration(db, project, inp.configuration),
        min_instances=lo,
        max_instances=hi,
        created_by=p.user.id,
    )
    db.add(node)
    db.flush()
    return node


def update_node(db: Session, p: Principal, project_id: str, ref: str, inp: NodeInput) -> Node:
    """Change a node. A change to what instances run (spec, configuration) is rolled out by
    replacing instances one at a time; name, description and counts apply at once."""
    project = tenancy.get_project(db, p, project_id, Action.PROJECT_USE)
    node = find_node(db, project, ref)
    if node.desired == NodeDesired.DELETE:
        raise Conflict(f"node {node.name!r} is being deleted")
    if inp.name is not None and inp.name != node.name:
        check_name(inp.name, "name")
        if db.scalar(select(Node.id).where(Node.project_id == project.id, Node.name == inp.name)):
            raise Conflict(f"a node named {inp.name!r} already exists in this project", field="name")
        node.name = inp.name
    if inp.description is not None:
        node.description = check_description(inp.description)
    lo, hi = _counts(
        node.min_instances if inp.min_instances is None else inp.min_instances,
        node.max_instances if inp.max_instances is None else inp.max_instances,
    )
    node.min_instances, node.max_instances = lo, hi
    runs = {"models", "command", "image", "port", "env", "health_check", "telemetry", "endpoint"} & inp.given
    kind, spec = (node.kind, node.spec)
    if runs:
        kind, spec = _spec(db, project, inp, node.spec)
    configuration = node.configuration
    if inp.configuration is not None:
        configuration = choose_configuration(db, project, inp.configuration)
    # Health checks, telemetry and the endpoint are read by Atoll and its data plane, not by the
    # instance: no rollout for them.
    rollout = (
        kind != node.kind
        or configuration != node.configuration
        or {k: v for k, v in spec.items() if k not in _NOT_RUN}
        != {k: v for k, v in node.spec.items() if k not in _NOT_RUN}
    )
    node.kind, node.spec, node.configuration = kind, spec, configuration
    if rollout:
        node.revision += 1
    node.updated_at = utcnow()
    return node


def suspend_node(db: Session, p: Principal, project_id: str, ref: str) -> Node:
    """Stop the node's instances (and their metering); its settings stay (spec §6.1)."""
    node = find_node(db, tenancy.get_project(db, p, project_id, Action.PROJECT_USE), ref)
    if node.desired == NodeDesired.DELETE:
        raise Conflict(f"node {node.name!r} is being deleted")
    node.desired = NodeDesired.SUSPEND
    node.updated_at = utcnow()
    return node


def resume_node(db: Session, p: Principal, project_id: str, ref: str) -> Node:
    project = tenancy.get_project(db, p, project_id, Action.PROJECT_USE)
    node = find_node(db, project, ref)
    if node.desired == NodeDesired.DELETE:
        raise Conflict(f"node {node.name!r} is being deleted")
    require_balance(project)
    node.desired = NodeDesired.RUN
    node.updated_at = utcnow()
    return node


def delete_node(db: Session, p: Principal, project_id: str, ref: str) -> Node:
    """Delete a node: refused while an alias sends it a share of requests (move it to 0 first);
    aliases that list it at 0% drop it. Instances stop after the gateway has let go of them."""
    project = tenancy.get_project(db, p, project_id, Action.PROJECT_USE)
    node = find_node(db, project, ref)
    for alias in db.scalars(select(Alias).where(Alias.project_id == project.id)):
        share = sum(int(e["weight"]) for e in alias.nodes if e["nodeId"] == node.id)
        if share > 0:
            raise Conflict(
                f"alias {alias.name!r} sends {share}% of its requests to node {node.name!r}: "
                "give that share to another node first"
            )
        if any(e["nodeId"] == node.id for e in alias.nodes):
            alias.nodes = [e for e in alias.nodes if e["nodeId"] != node.id]
            alias.updated_at = utcnow()
    node.desired = NodeDesired.DELETE
    node.status = NodeStatus.DELETING
    node.updated_at = utcnow()
    return node


# --- aliases -----------------------------------------------------------------------------------


def alias_name(value: str) -> str:
    """An alias name as callers may give it (DataSphere's ``datasphere.user.`` prefix dropped)."""
    return value[len(ALIAS_PREFIX) :] if value.startswith(ALIAS_PREFIX) else value


def _alias_nodes(db: Session, project: Project, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not entries:
        raise Invalid("nodes: an alias needs at least one node", field="nodes")
    out: list[dict[str, Any]] = []
    for i, e in enumerate(entries):
        try:
            node = find_node(db, project, str(e.get("nodeId") or e.get("node") or ""))
        except NotFound as err:
            raise Invalid(err.detail, field=f"nodes[{i}].nodeId") from err
        if node.desired == NodeDesired.DELETE:
            raise Invalid(f"node {node.name!r} is being deleted", field=f"nodes[{i}].nodeId")
        weight = e.get("weight")
        if not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight <= 100:
            raise Invalid("weight must be a whole percentage, 0-100", field=f"nodes[{i}].weight")
        if any(o["nodeId"] == node.id for o in out):
            raise Invalid(f"node {node.name!r} is listed twice", field=f"nodes[{i}].nodeId")
        out.append({"nodeId": node.id, "weight": weight})
    total = sum(o["weight"] for o in out)
    if total != 100:
        raise Invalid(f"nodes: the weights must add up to 100 (they add up to {total})", field="nodes")
    return out


def _check_meta(meta: dict[str, Any]) -> dict[str, str]:
    if len(meta) > 64 or not all(
        isinstance(k, str) and 0 < len(k) <= 63 and isinstance(v, str) and len(v) <= 256
        for k, v in meta.items()
    ):
        raise Invalid(
            "metadata: at most 64 string keys (1-63 chars) with string values (≤256)", field="metadata"
        )
    return dict(meta)


def find_alias(db: Session, project: Project, ref: str) -> Alias:
    alias = db.get(Alias, ref) if ref.startswith("als-") else None
    if alias is None:
        alias = db.scalar(select(Alias).where(Alias.name == alias_name(ref)))
    if alias is None or alias.project_id != project.id:
        raise NotFound(f"alias {ref!r} not found in project {project.id!r}")
    return alias


def list_aliases(db: Session, p: Principal, project_id: str) -> list[Alias]:
    project = tenancy.get_project(db, p, project_id)
    return list(db.scalars(select(Alias).where(Alias.project_id == project.id).order_by(Alias.name)))


def get_alias(db: Session, p: Principal, project_id: str, ref: str) -> Alias:
    return find_alias(db, tenancy.get_project(db, p, project_id), ref)


def create_alias(
    db: Session,
    p: Principal,
    project_id: str,
    *,
    name: str,
    nodes: list[dict[str, Any]],
    metadata: dict[str, Any] | None = None,
    public: bool = False,
) -> Alias:
    project = tenancy.get_project(db, p, project_id, Action.PROJECT_USE)
    name = check_name(alias_name(name), "name")
    if db.scalar(select(Alias.id).where(Alias.name == name)):
        raise Conflict(
            f"the alias name {name!r} is taken (alias names are unique in the installation)", field="name"
        )
    alias = Alias(
        project_id=project.id,
        name=name,
        nodes=_alias_nodes(db, project, nodes),
        meta=_check_meta(metadata or {}),
        public=bool(public),
        created_by=p.user.id,
    )
    db.add(alias)
    db.flush()
    return alias


def update_alias(
    db: Session,
    p: Principal,
    project_id: str,
    ref: str,
    *,
    nodes: list[dict[str, Any]] | None = None,
    metadata: dict[str, Any] | None = None,
    public: bool | None = None,
) -> Alias:
    """Change the nodes and their shares at once: the gateway switches atomically, and requests
    in flight finish where they started."""
    project = tenancy.get_project(db, p, project_id, Action.PROJECT_USE)
    alias = find_alias(db, project, ref)
    if nodes is not None:
        alias.nodes = _alias_nodes(db, project, nodes)
    if metadata is not None:
        alias.meta = _check_meta(metadata)
    if public is not None:
        alias.public = public
    alias.updated_at = utcnow()
    return alias


def delete_alias(db: Session, p: Principal, project_id: str, ref: str) -> None:
    alias = find_alias(db, tenancy.get_project(db, p, project_id, Action.PROJECT_USE), ref)
    db.delete(alias)
