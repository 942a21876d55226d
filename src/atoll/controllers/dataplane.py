"""The data plane controller (ATOLL_DATA_PLANE=haproxy): keep HAProxy serving the store's routes.

Twice a second it reads the routes and who may call them (domain/data_plane.py) and hands HAProxy
the plan (dataplane/proxy.py), which changes what it can live and reloads only for a new node. A
keeper that is gone (killed with its HAProxy) is started again at the next tick. At shutdown the
data plane is left serving: it outlives `atoll up`, and the next start adopts it.
"""

from __future__ import annotations

import logging

from atoll.dataplane.plan import AliasPlan, NodePlan, Plan, Server
from atoll.dataplane.proxy import HAProxyPlane
from atoll.domain.data_plane import Routes, routes
from atoll.store.db import Database

log = logging.getLogger("atoll.dataplane")
TICK_S = 0.5  # a revoked token or grant stops working within a second


def plan_of(r: Routes) -> Plan:
    return Plan(
        nodes={
            n.node_id: NodePlan(
                n.node_id, n.project_id, tuple(Server(i.instance_id, i.host, i.port) for i in n.instances)
            )
            for n in r.nodes.values()
        },
        aliases={a.name: AliasPlan(a.name, a.project_id, a.public, a.nodes) for a in r.aliases.values()},
        tokens=dict(r.tokens),
        grants=set(r.grants),
    )


class DataPlaneController:
    name = "dataplane"

    def __init__(self, db: Database, plane: HAProxyPlane) -> None:
        self.db = db
        self.plane = plane
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
