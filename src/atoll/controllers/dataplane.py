"""The data plane controller: keep HAProxy serving the store's routes, and count each node's load.

Twice a second it reads the routes and who may call them (domain/data_plane.py) and hands HAProxy
the plan (dataplane/proxy.py), which changes what it can live and reloads only for a new node. A
keeper that is gone (killed with its HAProxy) is started again at the next tick. At shutdown the
data plane is left serving: it outlives `atoll up`, and the next start adopts it.
"""

from __future__ import annotations

import logging

from atoll.controllers.node_load import NodeLoadBoard
from atoll.dataplane.admin import AdminError
from atoll.dataplane.plan import AliasPlan, NodePlan, Plan, Server
from atoll.dataplane.proxy import HAProxyPlane
from atoll.domain.data_plane import NodeRoute, Routes, routes
from atoll.store.db import Database

log = logging.getLogger("atoll.dataplane")
TICK_S = 0.5  # a revoked token or grant stops working within a second


def node_plan(n: NodeRoute) -> NodePlan:
    return NodePlan(
        n.node_id,
        n.project_id,
        tuple(Server(i.instance_id, i.host, i.port, i.grpc_port) for i in n.instances),
        timeout_s=n.setting("timeoutS"),
        idle_timeout_s=n.setting("idleTimeoutS"),
        h2=n.protocol in ("HTTP2", "GRPC"),
        max_conn=n.setting("maxConcurrency"),
        queue_length=n.setting("queueLength"),
        queue_timeout_s=n.setting("queueTimeoutS"),
        max_body_bytes=n.setting("maxBodyMb") * 1024 * 1024,
        grpc=n.grpc,
    )


def plan_of(r: Routes) -> Plan:
    return Plan(
        nodes={n.node_id: node_plan(n) for n in r.nodes.values()},
        aliases={a.name: AliasPlan(a.name, a.project_id, a.public, a.nodes) for a in r.aliases.values()},
        tokens=dict(r.tokens),
        grants=set(r.grants),
    )


class DataPlaneController:
    name = "dataplane"

    def __init__(self, db: Database, plane: HAProxyPlane, loads: NodeLoadBoard | None = None) -> None:
        self.db = db
        self.plane = plane
        self.loads = loads  # where the node controller reads each node's requests
        self._failing = ""

    def interval(self, base: float) -> float:
        return min(base, TICK_S)

    def close(self) -> None:
        pass  # HAProxy keeps serving the last routes; the next `atoll up` adopts its keeper

    def tick(self) -> None:
        if self.plane.keeper_pid() is None:
            log.warning("the data plane is not running: starting HAProxy")
            self.plane.start()
        with self.db.session() as s:
            plan = plan_of(routes(s))
        try:
            self.plane.apply(plan)
        except Exception as e:  # said once per distinct failure, retried every tick
            if str(e) != self._failing:
                log.error("the data plane refused the routes: %s", e)
            self._failing = str(e)
            return
        self._failing = ""
        if self.loads is not None:
            try:
                self.loads.put({nid: n.active + n.held for nid, n in self.plane.load().items()})
            except AdminError:
                pass  # a reload in progress: the board goes stale, the next tick reads again
