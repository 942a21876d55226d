"""The gateway's routing table: aliases → weighted nodes → Healthy instances, read from the store.

The table is rebuilt from three small queries a few times a second and swapped in whole, so a
change of weights or nodes is atomic for the requests that follow it, while requests in flight
keep the instance they were sent to. Only Healthy instances of running nodes are in it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from sqlalchemy import select

from atoll.states import InstanceStatus, NodeDesired
from atoll.store.db import Database
from atoll.store.tables import Alias, Node, NodeInstance, WorkloadRow

EJECT_S = 2.0  # an instance that refused a connection is skipped this long (until the table knows)


@dataclass(eq=False)
class Backend:
    instance_id: str
    host: str
    port: int


@dataclass(eq=False)
class NodeRoute:
    node_id: str
    name: str
    project_id: str
    backends: list[Backend]
    _next: int = 0

    def pick(self, ejected: dict[str, float], tried: AbstractSet[str]) -> Backend | None:
        """Round robin over the instances not ejected and not already tried for this request."""
        n = len(self.backends)
        now = 0.0
        for _ in range(n):
            b = self.backends[self._next % n]
            self._next += 1
            if b.instance_id in tried:
                continue
            until = ejected.get(b.instance_id)
            if until is not None:
                now = now or time.monotonic()
                if until > now:
                    continue
            return b
        return None

    def unpick(self) -> None:
        """Take the last pick back (it was not used), so the next pick returns the same instance:
        a request the fast path hands to the slow one must not skip an instance's turn."""
        self._next -= 1


@dataclass(eq=False)
class AliasRoute:
    alias_id: str
    name: str
    project_id: str
    public: bool
    nodes: list[tuple[NodeRoute, int]] = field(default_factory=list)

    def choose(self, ejected: dict[str, float], tried: AbstractSet[str]) -> tuple[NodeRoute, Backend] | None:
        """A node by weight among those with an instance to take the request, then its instance.
        A node with none left gives its share to the others, so a request never goes nowhere
        while some node could answer it."""
        candidates = [(n, w) for n, w in self.nodes if w > 0 and n.backends]
        while candidates:
            if len(candidates) == 1:
                i = 0
            else:
                i = random.choices(range(len(candidates)), weights=[w for _, w in candidates])[0]
            node = candidates[i][0]
            b = node.pick(ejected, tried)
            if b is not None:
                return node, b
            candidates.pop(i)
        return None


@dataclass
class Table:
    nodes: dict[str, NodeRoute] = field(default_factory=dict)  # by node id
    aliases: dict[str, AliasRoute] = field(default_factory=dict)  # by alias name
    signature: tuple = ()


def load(db: Database) -> Table:
    """The current table (nodes of any status: a node with no Healthy instance answers 503)."""
    with db.session() as s:
        nodes = s.execute(
            select(Node.id, Node.name, Node.project_id).where(Node.desired == NodeDesired.RUN)
        ).all()
        insts = s.execute(
            select(NodeInstance.id, NodeInstance.node_id, NodeInstance.port, WorkloadRow.host)
            .outerjoin(WorkloadRow, WorkloadRow.id == NodeInstance.workload_id)
            .where(NodeInstance.status == InstanceStatus.HEALTHY, NodeInstance.port.is_not(None))
            .order_by(NodeInstance.id)
        ).all()
        aliases = s.execute(select(Alias.id, Alias.name, Alias.project_id, Alias.public, Alias.nodes)).all()
    signature = (tuple(nodes), tuple(insts), tuple((a[0], a[1], a[2], a[3], str(a[4])) for a in aliases))
    table = Table(signature=signature)
    for node_id, name, project_id in nodes:
        table.nodes[node_id] = NodeRoute(node_id, name, project_id, [])
    for inst_id, node_id, port, host in insts:
        route = table.nodes.get(node_id)
        if route is not None:
            route.backends.append(Backend(inst_id, host or "127.0.0.1", int(port or 0)))
    for alias_id, name, project_id, public, entries in aliases:
        a = AliasRoute(alias_id, name, project_id, bool(public))
        for e in entries or []:
            route = table.nodes.get(e.get("nodeId", ""))
            if route is not None:
                a.nodes.append((route, int(e.get("weight", 0))))
        table.aliases[name] = a
    return table
