"""What the data plane serves, read from the store: routes, and who may call them.

Routes: each running node with its Healthy instances, each alias with its nodes and weights (spec
§6.2, §6.3). Access: a private alias and every node answer only a bearer Atoll API token of an
active user who may view the project — the same rule the API applies (``access.visible_projects``
is the query form of Action.PROJECT_VIEW). The data plane holds these as maps keyed by the token's
sha256 (which is what the store keeps), so no request calls back into Atoll.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from atoll.domain import access, node_endpoint
from atoll.states import InstanceStatus, NodeDesired
from atoll.store.tables import (
    Alias,
    ApiToken,
    Node,
    NodeInstance,
    Project,
    User,
    WorkloadRow,
    as_utc,
    utcnow,
)


@dataclass(frozen=True)
class Instance:
    instance_id: str
    host: str
    port: int
    grpc_port: int = 0  # a model server's gRPC face


@dataclass(frozen=True)
class NodeRoute:
    node_id: str
    project_id: str
    instances: tuple[Instance, ...]
    endpoint: tuple[tuple[str, object], ...] = ()  # the node's endpoint settings, as items
    grpc: bool = False  # its instances answer gRPC on a port of their own (model nodes)

    def setting(self, key: str) -> int:
        value = dict(self.endpoint).get(key, node_endpoint.DEFAULTS[key])
        return int(value)  # type: ignore[call-overload]

    @property
    def protocol(self) -> str:
        return str(dict(self.endpoint).get("type", "HTTP"))


@dataclass(frozen=True)
class AliasRoute:
    name: str
    project_id: str
    public: bool
    nodes: tuple[tuple[str, int], ...]  # (node id, weight), running nodes only


@dataclass
class Routes:
    nodes: dict[str, NodeRoute] = field(default_factory=dict)
    aliases: dict[str, AliasRoute] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # token sha256 -> user id
    grants: set[tuple[str, str]] = field(default_factory=set)  # (user id, project id)


def routes(db: Session) -> Routes:
    out = Routes()
    nodes = db.execute(
        select(Node.id, Node.project_id, Node.spec, Node.kind).where(Node.desired == NodeDesired.RUN)
    ).all()
    found: dict[str, list[Instance]] = {nid: [] for nid, _, _, _ in nodes}
    insts = db.execute(
        select(
            NodeInstance.id, NodeInstance.node_id, NodeInstance.port, NodeInstance.grpc_port, WorkloadRow.host
        )
        .outerjoin(WorkloadRow, WorkloadRow.id == NodeInstance.workload_id)
        .where(NodeInstance.status == InstanceStatus.HEALTHY, NodeInstance.port.is_not(None))
        .order_by(NodeInstance.id)
    ).all()
    for iid, nid, port, grpc_port, host in insts:
        if nid in found:
            found[nid].append(Instance(iid, host or "127.0.0.1", int(port or 0), int(grpc_port or 0)))
    for nid, project_id, spec, kind in nodes:
        settings = tuple(sorted(node_endpoint.of(spec or {}).items()))
        out.nodes[nid] = NodeRoute(nid, project_id, tuple(found[nid]), settings, grpc=kind == "model")
    for name, project_id, public, entries in db.execute(
        select(Alias.name, Alias.project_id, Alias.public, Alias.nodes)
    ).all():
        spread = tuple(
            (e["nodeId"], int(e.get("weight", 0))) for e in entries or [] if e.get("nodeId") in out.nodes
        )
        out.aliases[name] = AliasRoute(name, project_id, bool(public), spread)
    _access(db, out)
    return out


def _access(db: Session, out: Routes) -> None:
    """Tokens of active users, and the projects with routes each of those users may call."""
    projects = {n.project_id for n in out.nodes.values()} | {
        a.project_id for a in out.aliases.values() if not a.public
    }
    now = utcnow()
    rows = db.execute(
        select(ApiToken.token_hash, ApiToken.user_id, ApiToken.expires_at)
        .join(User, User.id == ApiToken.user_id)
        # An external IDE link's token opens its project's JupyterLab, no alias.
        .where(ApiToken.revoked_at.is_(None), ApiToken.project_id.is_(None), User.is_active.is_(True))
    ).all()
    # Expiry compared here: SQLite keeps times without their zone (as auth.user_from_token does).
    out.tokens = {h: uid for h, uid, exp in rows if exp is None or as_utc(exp) > now}
    if not projects:
        return
    for uid in set(out.tokens.values()):
        user = db.get(User, uid)
        assert user is not None
        p = access.load_principal(db, user)
        visible = db.scalars(select(Project.id).where(Project.id.in_(projects), access.visible_projects(p)))
        out.grants.update((uid, pid) for pid in visible)
