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

MIN_SLOTS = 8
DEFAULT_TIMEOUT_S = 600  # an LLM may generate for ten minutes
DEFAULT_HOLD_MS = 30_000  # how long a request waits for a node's first instance
MAX_BODY_BYTES = 16 * 1024 * 1024  # spec §6.1; per node
METRICS_PATH = "/_data-plane/metrics"  # where `atoll up` answers the gateway port's /metrics
_NAME = re.compile(r"^[A-Za-z0-9._-]+$")  # what goes into a map key or a backend name


@dataclass(frozen=True)
class Server:
    """An instance in a node's slot."""

    instance_id: str
    host: str
    port: int


@dataclass(frozen=True)
class NodePlan:
    node_id: str
    project_id: str
    servers: tuple[Server, ...] = ()
    timeout_s: int = DEFAULT_TIMEOUT_S
    hold_ms: int = DEFAULT_HOLD_MS
    max_body_bytes: int = MAX_BODY_BYTES

    @property
    def backend(self) -> str:
        return f"node_{self.node_id}"


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


def route_value(public: bool, project_id: str, hold_ms: int, choices: list[tuple[str, int]]) -> str:
    """A map value atoll.lua reads (see there)."""
    spread = ",".join(f"{backend}:{weight}" for backend, weight in choices)
    return f"{int(public)}|{_checked(project_id)}|{hold_ms}|{spread}"


def maps(plan: Plan) -> dict[str, dict[str, str]]:
    """Each map file's entries, by file name."""
    nodes = {
        _checked(n.node_id): route_value(False, n.project_id, n.hold_ms, [(n.backend, 1)])
        for n in plan.nodes.values()
    }
    aliases: dict[str, str] = {}
    for a in plan.aliases.values():
        choices = [(plan.nodes[nid].backend, w) for nid, w in a.nodes if nid in plan.nodes]
        hold = max((plan.nodes[nid].hold_ms for nid, _ in a.nodes if nid in plan.nodes), default=0)
        aliases[_checked(a.name)] = route_value(a.public, a.project_id, hold, choices)
    return {
        "nodes.map": nodes,
        "aliases.map": aliases,
        "tokens.map": {_checked(h): _checked(u) for h, u in plan.tokens.items()},
        "grants.map": {f"{_checked(u)}/{_checked(p)}": "1" for u, p in plan.grants},
    }


def render_map(entries: dict[str, str]) -> str:
    return "".join(f"{k} {v}\n" for k, v in sorted(entries.items()))


def server_line(slot: int, server: Server | None) -> str:
    if server is None:  # an empty slot: no address, out of rotation until the runtime API fills it
        return f"server s{slot} 127.0.0.1:1 disabled"
    return f"server s{slot} {server.host}:{server.port}"


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
        slots={n.node_id: [server_line(i + 1, s) for i, s in enumerate(slots[n.node_id])] for n in nodes},
    )
