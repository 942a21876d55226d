"""What HAProxy should serve, and its configuration and map files rendered from that.

A `Plan` is the routing table as HAProxy sees it: one backend per running node, whose instances
fill pre-declared server slots (so an instance that comes or goes is a runtime-API change, never
a reload), and the maps the frontend reads for every request — aliases and nodes to their routes,
Atoll tokens (by sha256) to users, users to the projects they may call. The maps and slots change
live; only a new node (a backend) or a node outgrowing its slots needs a reload, and a reload in
master-worker mode lets the old worker finish every request it holds (no hard-stop-after).

The files are rendered whole from the plan, so a restarted HAProxy comes back with the state the
runtime API had put in place.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from atoll.dataplane import counters

MIN_SLOTS = 8
DEFAULT_TIMEOUT_S = 600  # an LLM may generate for ten minutes
MAX_BODY_BYTES = 16 * 1024 * 1024  # spec §6.1; per node
METRICS_PATH = "/_data-plane/metrics"  # where `atoll up` answers the gateway port's /metrics
_NAME = re.compile(r"^[A-Za-z0-9._-]+$")  # what goes into a map key or a backend name


@dataclass(frozen=True)
class Server:
    """An instance in a node's slot."""

    instance_id: str
    host: str
    port: int
    grpc_port: int = 0  # the model server's gRPC face, where the node has one


@dataclass(frozen=True)
class NodePlan:
    """A node's backend: its instances, and the endpoint settings (domain/node_endpoint.py)."""

    node_id: str
    project_id: str
    servers: tuple[Server, ...] = ()
    timeout_s: int = DEFAULT_TIMEOUT_S  # silence allowed from the instance (HAProxy's server timeout)
    idle_timeout_s: int = 3600  # silence allowed on a WebSocket (the tunnel timeout)
    h2: bool = False  # the instances speak h2c (HTTP/2 or gRPC)
    max_conn: int = 0  # requests at once per instance; 0: no cap
    queue_length: int = 100  # requests that may wait for a place while every instance is full
    queue_timeout_s: int = 30  # ... and how long, also for a first instance (scale from zero)
    max_body_bytes: int = MAX_BODY_BYTES
    # A model node's instances answer gRPC (KServe v2) on a port of its own: a second backend,
    # its slots mirroring the first's, takes the requests whose content type is gRPC.
    grpc: bool = False

    @property
    def backend(self) -> str:
        return f"node_{self.node_id}"

    @property
    def hold_ms(self) -> int:
        """How long atoll.lua holds a request while the node has no instance up."""
        return self.queue_timeout_s * 1000

    @property
    def settings(self) -> tuple[object, ...]:
        """What the config (not the slots' addresses) holds of the node: a change is a reload."""
        return (
            self.timeout_s,
            self.idle_timeout_s,
            self.h2,
            self.max_conn,
            self.queue_length,
            self.queue_timeout_s,
            self.max_body_bytes,
            self.grpc,
        )


@dataclass(frozen=True)
class AliasPlan:
    name: str
    project_id: str
    public: bool
    nodes: tuple[tuple[str, int], ...]  # (node id, weight)


@dataclass
class Plan:
    nodes: dict[str, NodePlan] = field(default_factory=dict)
    aliases: dict[str, AliasPlan] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # sha256 hex of an Atoll token -> user id
    grants: set[tuple[str, str]] = field(default_factory=set)  # (user id, project id) it may call


Slots = dict[str, list[Server | None]]  # node id -> its backend's slots, in order (None: empty)


def slot_count(need: int, have: int = 0) -> int:
    """The slots a backend declares: what it has while enough, else room for twice ``need`` (at
    least MIN_SLOTS, so a node's first instances never need a reload)."""
    if need <= have and have >= MIN_SLOTS:
        return have
    n = MIN_SLOTS
    while n < 2 * need:
        n *= 2
    return n


def usable(plan: Plan) -> tuple[Plan, list[str]]:
    """``plan`` without what cannot go into HAProxy's config and maps (a name with a space or a
    quote, from a row written before names were checked), and a line for each thing left out:
    one odd row must not stop every other route from being served."""
    dropped: list[str] = []

    def ok(what: str, *names: str) -> bool:
        if all(_NAME.match(n) for n in names):
            return True
        dropped.append(f"{what} {names[0]!r}")
        return False

    nodes = {k: n for k, n in plan.nodes.items() if ok("node", n.node_id, n.project_id)}
    aliases = {k: a for k, a in plan.aliases.items() if ok("alias", a.name, a.project_id)}
    tokens = {h: u for h, u in plan.tokens.items() if ok("token of user", u, h)}
    grants = {(u, p) for u, p in plan.grants if ok("grant to user", u, p)}
    return Plan(nodes, aliases, tokens, grants), dropped


def _checked(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"{name!r} cannot go into HAProxy's maps")
    return name


def route_value(plan: Plan, public: bool, project_id: str, nodes: list[tuple[str, int]]) -> str:
    """A map value the frontend and atoll.lua read:
    ``<public 0|1>|<project id>|<hold ms>|<backend>:<weight>,...|<direct>|<grpc 0|1>``.

    ``direct`` is the one backend the route can go to now (the only node with a share and an
    instance up), which the config uses without Lua — most routes, most of the time; "none" when
    the choice is atoll.lua's (several nodes by weight, or none up: hold). ``grpc``: that
    backend has a gRPC face."""
    known = [(plan.nodes[nid], w) for nid, w in nodes if nid in plan.nodes]
    spread = ",".join(f"{n.backend}:{w}" for n, w in known)
    hold = max((n.hold_ms for n, _ in known), default=0)
    up = [n for n, w in known if w > 0 and n.servers]
    direct = up[0] if len(up) == 1 else None
    tail = f"{direct.backend}|{int(direct.grpc)}" if direct else "none|0"
    return f"{int(public)}|{_checked(project_id)}|{hold}|{spread}|{tail}"


def maps(plan: Plan) -> dict[str, dict[str, str]]:
    """Each map file's entries, by file name."""
    nodes = {
        _checked(n.node_id): route_value(plan, False, n.project_id, [(n.node_id, 1)])
        for n in plan.nodes.values()
    }
    aliases = {
        _checked(a.name): route_value(plan, a.public, a.project_id, list(a.nodes))
        for a in plan.aliases.values()
    }
    return {
        "nodes.map": nodes,
        "aliases.map": aliases,
        "tokens.map": {_checked(h): _checked(u) for h, u in plan.tokens.items()},
        "grants.map": {f"{_checked(u)}/{_checked(p)}": "1" for u, p in plan.grants},
    }


def render_map(entries: dict[str, str]) -> str:
    return "".join(f"{k} {v}\n" for k, v in sorted(entries.items()))


def server_line(node: NodePlan, slot: int, server: Server | None, *, grpc: bool = False) -> str:
    # An empty slot has no address and is out of rotation until the runtime API fills it.
    port = (server.grpc_port if grpc else server.port) if server else 0
    where = f"{server.host}:{port}" if server and port else "127.0.0.1:1 disabled"
    cap = f" maxconn {node.max_conn}" if node.max_conn else ""
    return f"server s{slot} {where}{cap}{' proto h2' if node.h2 or grpc else ''}"


_TEMPLATE = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,  # noqa: S701 - a config file, not HTML
).get_template("haproxy.cfg.j2")


def render_config(
    plan: Plan,
    slots: Slots,
    directory: Path,
    host: str,
    port: int,
    control_port: int = 0,
    maxconn: int = 4000,
) -> str:
    """haproxy.cfg for ``plan``, each node's instances in the ``slots`` they hold."""
    nodes = sorted(plan.nodes.values(), key=lambda n: n.node_id)
    return _TEMPLATE.render(
        lua=Path(__file__).with_name("atoll.lua"),
        maxconn=maxconn,
        default_timeout_s=DEFAULT_TIMEOUT_S,
        host=host,
        port=port,
        control_port=control_port,
        unprivileged=os.geteuid() == 0,
        metrics_path=METRICS_PATH,
        dir=directory,
        nodes=nodes,
        table=counters.TABLE,
        slots={n.node_id: [server_line(n, i + 1, s) for i, s in enumerate(slots[n.node_id])] for n in nodes},
        grpc_slots={
            n.node_id: [server_line(n, i + 1, s, grpc=True) for i, s in enumerate(slots[n.node_id])]
            for n in nodes
            if n.grpc
        },
    )
