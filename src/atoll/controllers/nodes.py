"""The node controller: keep each node's instances running, healthy and on the node's revision.

Each tick, in one transaction: follow every instance's Workload (a crashed one turns Unhealthy
and is started again), start instances up to ``minInstances``, roll a changed node out one extra
instance at a time (an old instance retires only once a new one is Healthy, so capacity never
drops below the minimum nor exceeds it by more than one), and retire what suspend or delete
asks. A retiring instance is first marked Deleting, so the gateway stops sending it requests;
its Workload stops ``DRAIN_S`` later and finishes the requests it has. Health checks run outside
the transaction, in parallel, and are written back in a second one.
"""

from __future__ import annotations

import logging
import math
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from atoll.controllers.node_health import Check, port_for
from atoll.controllers.node_load import NodeLoadBoard
from atoll.controllers.node_start import InstanceStarter
from atoll.controllers.telemetry import TelemetryBoard
from atoll.domain import deploy, node_endpoint
from atoll.domain.workloads import hosts_of, request_stop
from atoll.envs.build import EnvironmentBuilder
from atoll.states import (
    INSTANCE_GONE,
    WORKLOAD_FINISHED,
    Desired,
    InstanceStatus,
    NodeDesired,
    NodeStatus,
    WorkloadPhase,
)
from atoll.storage.blobs import BlobStore
from atoll.store.db import Database
from atoll.store.tables import DeployMetric, Node, NodeInstance, WorkloadRow, as_utc, utcnow

log = logging.getLogger("atoll.nodes")
DRAIN_S = 1.5  # the gateway re-reads its routes every 0.25 s: it has let go well before this
READY_CHECK_S = 0.25  # until an instance first turns Healthy, look this often (not every interval)
MAX_BACKOFF_S = 30.0
PER_INSTANCE = 4.0  # requests in flight per instance above which a node grows towards its maximum
LOAD_WINDOW_S = 30.0
SCALE_DOWN_S = 60.0
REPLACE_MIN_S = 10.0  # an instance out of balancing this long (and its failed checks' time) is replaced


class NodeController:
    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        envs: EnvironmentBuilder,
        data_dir: Path,
        project_home: Callable[[str, tuple[int, int] | None], Path],
        *,
        uid_base: int = 0,
        notify: Callable[[str], None] = lambda _name: None,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.envs = envs
        self.data_dir = data_dir
        self.project_home = project_home
        self.uid_base = uid_base
        self.notify = notify
        self.active = False  # some node exists: the loop ticks quickly
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="atoll-nodes")
        self._checker = ThreadPoolExecutor(max_workers=8, thread_name_prefix="atoll-health")
        self._busy: set[str] = set()
        self._checked: dict[str, float] = {}  # instance id → time.monotonic() of its last check
        self._not_before: dict[str, float] = {}  # instance id → when a crashed one may start again
        self._low_since: dict[str, float] = {}  # node id → since when it needs fewer instances
        self._failing_since: dict[str, float] = {}  # instance id → since when it is out of balancing
        self._http = httpx.Client(trust_env=False)
        self.telemetry = TelemetryBoard()
        self.loads = NodeLoadBoard()  # the data plane's counts, when it is HAProxy
        self.starter = InstanceStarter(db, blobs, envs, data_dir, project_home, uid_base, notify)

    # --- the loop -----------------------------------------------------------------------

    name = "nodes"

    def interval(self, base: float) -> float:
        # Instances' health checks and the gateway's view want a quick loop while any node exists.
        return min(0.25, base) if self.active else base

    def close(self) -> None:
        pass

    def tick(self, now: datetime | None = None) -> None:
        now = now or utcnow()
        with self.db.transaction() as s:
            nodes = list(s.scalars(select(Node)))
            self.active = bool(nodes)
            checks: list[Check] = []
            seen: list[tuple[Node, list[NodeInstance]]] = []
            for node in nodes:
                insts = deploy.instances(s, node)
                checks.extend(self._reconcile(s, node, insts, now))
                seen.append((node, insts))
            scrapes, live = self._telemetry_due(s, seen)
        if scrapes:
            self.telemetry.keep_only(live)
            for node_id, inst_id, url in scrapes:
                self._checker.submit(self.telemetry.scrape, self._http, node_id, inst_id, url)
        if checks:
            results = list(self._checker.map(self._check, checks))
            with self.db.transaction() as s:
                for c, (ok, detail) in zip(checks, results, strict=True):
                    self._apply_check(s, c.instance_id, ok, detail)

    def _reconcile(self, s: Session, node: Node, insts: list[NodeInstance], now: datetime) -> list[Check]:
        checks: list[Check] = []
        for inst in insts:
            check = self._follow(s, node, inst, now)
            if check is not None:
                checks.append(check)
        live = [i for i in insts if i.status not in INSTANCE_GONE]
        if node.desired != NodeDesired.RUN:
            for inst in live:
                self._retire(
                    s,
                    inst,
                    now,
                    "the node is suspended" if node.desired == NodeDesired.SUSPEND else "node deleted",
                )
            self._node_status(s, node, insts)
            return checks
        want = self._wanted(s, node, len([i for i in live if i.revision == node.revision]), now)
        current = [i for i in live if i.revision == node.revision]
        old = [i for i in live if i.revision != node.revision]
        healthy_current = [i for i in current if i.status == InstanceStatus.HEALTHY]
        # Old instances stay while the new ones are not yet Healthy enough to carry the minimum.
        keep_old = max(0, want - len(healthy_current))
        for inst in _worst_first(old)[: max(0, len(old) - keep_old)]:
            self._retire(s, inst, now, f"replaced by revision {node.revision}")
            live.remove(inst)
        for inst in _worst_first(current)[: max(0, len(current) - want)]:
            self._retire(s, inst, now, "more instances than minInstances")
            live.remove(inst)
            current.remove(inst)
        if len(current) < want and len(live) < want + 1:
            inst = NodeInstance(node_id=node.id, project_id=node.project_id, revision=node.revision)
            s.add(inst)
            s.flush()
            log.info("node %s: new instance %s (revision %s)", node.id, inst.id, node.revision)
        self._node_status(s, node, insts)
        return checks

    def _wanted(self, s: Session, node: Node, running: int, now: datetime) -> int:
        """How many instances the node should run: ``minInstances``, and up to ``maxInstances``
        while its requests exceed what its instances take: ``maxConcurrency`` each where the
        endpoint caps them, else ``PER_INSTANCE``. Its requests are the larger of what the data
        plane holds now (in flight, queued, and held for a first instance: a node scaled to zero
        starts one) and the average over the last 30 s (Little's law: the sum of the finished
        requests' latencies / 30 s). It scales down one at a time, after the load has stayed low
        for ``SCALE_DOWN_S``."""
        lo, hi = node.min_instances, node.max_instances
        if hi <= lo:
            return lo
        since = now - timedelta(seconds=LOAD_WINDOW_S)
        busy = s.scalar(
            select(func.coalesce(func.sum(DeployMetric.seconds), 0.0)).where(
                DeployMetric.target == f"node:{node.id}",
                DeployMetric.bucket_at >= since - timedelta(seconds=10),
            )
        )
        in_flight = max(float(busy or 0.0) / LOAD_WINDOW_S, float(self.loads.of(node.id) or 0))
        per_instance = node_endpoint.of(node.spec)["maxConcurrency"] or PER_INSTANCE
        needed = max(lo, min(hi, math.ceil(in_flight / per_instance)))
        current = max(lo, min(hi, running))
        if needed >= current:
            self._low_since.pop(node.id, None)
            return needed
        low = self._low_since.setdefault(node.id, time.monotonic())
        if time.monotonic() - low >= SCALE_DOWN_S:
            self._low_since[node.id] = time.monotonic()
            return current - 1
        return current

    def _telemetry_due(
        self, s: Session, seen: list[tuple[Node, list[NodeInstance]]]
    ) -> tuple[list[tuple[str, str, str]], set[str]]:
        """(node, instance, URL) of the Healthy instances whose metrics are due for a scrape: the
        node's telemetry path, or a model server's /metrics (Triton's names)."""
        due: list[tuple[Node, NodeInstance, str]] = []
        live: set[str] = set()
        for node, insts in seen:
            tel = node.spec.get("telemetry") or ({"path": "/metrics"} if node.kind == "model" else None)
            if not tel or node.desired != NodeDesired.RUN:
                continue
            for inst in insts:
                if inst.status == InstanceStatus.HEALTHY and inst.port is not None:
                    live.add(inst.id)
                    if self.telemetry.due(inst.id):
                        due.append((node, inst, tel["path"]))
        if not due:
            return [], live
        hosts = hosts_of(s, (inst.workload_id for _, inst, _ in due))
        return [
            (
                node.id,
                inst.id,
                f"http://{hosts[inst.workload_id]}:{port_for(inst, node.spec.get('telemetry'))}{path}",
            )
            for node, inst, path in due
        ], live

    def _node_status(self, s: Session, node: Node, insts: list[NodeInstance]) -> None:
        if node.desired == NodeDesired.DELETE:
            node.status = NodeStatus.DELETING
            if all(i.status == InstanceStatus.DELETED for i in insts):
                s.execute(delete(NodeInstance).where(NodeInstance.node_id == node.id))
                s.delete(node)
            return
        if node.desired == NodeDesired.SUSPEND:
            node.status = NodeStatus.SUSPENDED
            node.detail = "suspended: no instances run and nothing is billed"
            return
        healthy = sum(1 for i in insts if i.status == InstanceStatus.HEALTHY)
        if healthy >= node.min_instances:
            node.status, node.detail = (
                NodeStatus.HEALTHY,
                f"{healthy} of {node.min_instances} instances healthy",
            )
        elif node.status in (NodeStatus.HEALTHY, NodeStatus.UNHEALTHY):
            node.status, node.detail = (
                NodeStatus.UNHEALTHY,
                f"{healthy} of {node.min_instances} instances healthy",
            )
        else:
            node.status = NodeStatus.CREATED
            waiting = [i.detail for i in insts if i.detail and i.status != InstanceStatus.HEALTHY]
            node.detail = waiting[0] if waiting else "starting instances"

    # --- one instance -------------------------------------------------------------------

    def _follow(self, s: Session, node: Node, inst: NodeInstance, now: datetime) -> Check | None:
        wl = s.get(WorkloadRow, inst.workload_id) if inst.workload_id else None
        if inst.status == InstanceStatus.DELETING:
            if wl is None or wl.state in WORKLOAD_FINISHED:
                inst.status, inst.finished_at = InstanceStatus.DELETED, now
                self._forget(inst.id)
            elif wl.desired != Desired.STOP and inst.deleting_at is not None:
                if (now - as_utc(inst.deleting_at)).total_seconds() >= DRAIN_S:
                    request_stop(
                        s, wl.id, inst.detail or "instance deleted", sig=int(signal.SIGTERM), grace=10
                    )
                    self.notify("workloads")
            return None
        if inst.status == InstanceStatus.DELETED:
            return None
        if wl is None:
            if time.monotonic() >= self._not_before.get(inst.id, 0):
                self._background(inst.id)
            return None
        if wl.state in WORKLOAD_FINISHED:
            reason = wl.stop_reason or f"exited with code {wl.exit_code}"
            log.warning("node %s instance %s stopped (%s): starting it again", node.id, inst.id, reason)
            inst.status, inst.passes, inst.fails = InstanceStatus.UNHEALTHY, 0, 0
            inst.detail = f"the instance stopped ({reason}); restarting it"
            inst.workload_id = None
            inst.restarts += 1
            delay = min(MAX_BACKOFF_S, 2.0 ** (inst.restarts - 2)) if inst.restarts > 1 else 0.0
            self._not_before[inst.id] = time.monotonic() + delay
            return None
        if wl.state == WorkloadPhase.QUEUED:
            inst.status = InstanceStatus.CREATED if inst.status == InstanceStatus.UNDEFINED else inst.status
            inst.detail = wl.wait_reason or "waiting for the scheduler"
            return None
        if wl.state != WorkloadPhase.RUNNING or inst.port is None:
            return None
        if inst.status in (InstanceStatus.UNDEFINED, InstanceStatus.CREATED):
            inst.status, inst.detail = InstanceStatus.STARTED, f"running on {wl.configuration}"
        hc = node.spec.get("healthCheck", deploy.HEALTH_DEFAULTS)
        if self._replace_if_stuck(s, inst, wl, hc):
            return None
        every = float(hc["intervalS"]) if inst.healthy_at else min(float(hc["intervalS"]), READY_CHECK_S)
        last = self._checked.get(inst.id, 0.0)
        if time.monotonic() - last < every:
            return None
        self._checked[inst.id] = time.monotonic()
        return Check.of(inst, wl.host, hc, node.kind == "model")

    def _replace_if_stuck(self, s: Session, inst: NodeInstance, wl: WorkloadRow, hc: dict) -> bool:
        """An instance that served, then failed its health check while its process lives (hung,
        out of memory in a way that does not kill it, a dead backend connection) is stopped once
        it has stayed out of balancing for ``unhealthyThreshold`` more intervals (at least
        ``REPLACE_MIN_S``); it then starts again like one that crashed."""
        since = self._failing_since.get(inst.id)
        if inst.status != InstanceStatus.UNHEALTHY or since is None or wl.desired == Desired.STOP:
            return False
        after = max(REPLACE_MIN_S, float(hc["intervalS"]) * int(hc["unhealthyThreshold"]))
        if time.monotonic() - since < after:
            return False
        reason = f"unhealthy for {after:g} s while running: replaced"
        log.warning("instance %s: %s", inst.id, reason)
        request_stop(s, wl.id, reason, sig=int(signal.SIGTERM), grace=5)
        inst.detail = reason
        self._failing_since.pop(inst.id, None)
        self.notify("workloads")
        return True

    def _retire(self, s: Session, inst: NodeInstance, now: datetime, why: str) -> None:
        if inst.workload_id is None:
            inst.status, inst.finished_at, inst.detail = InstanceStatus.DELETED, now, why
            self._forget(inst.id)
            return
        inst.status, inst.deleting_at, inst.detail = InstanceStatus.DELETING, now, why

    def _forget(self, instance_id: str) -> None:
        self._checked.pop(instance_id, None)
        self._not_before.pop(instance_id, None)
        self._failing_since.pop(instance_id, None)

    # --- health checks ------------------------------------------------------------------

    def _check(self, c: Check) -> tuple[bool, str]:
        return c.run(self._http)

    def _apply_check(self, s: Session, instance_id: str, ok: bool, detail: str) -> None:
        inst = s.get(NodeInstance, instance_id)
        if inst is None or inst.status in INSTANCE_GONE:
            return
        node = s.get(Node, inst.node_id)
        hc = node.spec.get("healthCheck", deploy.HEALTH_DEFAULTS) if node else deploy.HEALTH_DEFAULTS
        if ok:
            self._failing_since.pop(instance_id, None)
            inst.passes, inst.fails = inst.passes + 1, 0
            if inst.status != InstanceStatus.HEALTHY and inst.passes >= int(hc["healthyThreshold"]):
                inst.status, inst.detail = InstanceStatus.HEALTHY, "in balancing"
                inst.healthy_at = utcnow()
            return
        inst.passes, inst.fails = 0, inst.fails + 1
        if inst.status == InstanceStatus.HEALTHY:
            if inst.fails >= int(hc["unhealthyThreshold"]):
                inst.status, inst.detail = InstanceStatus.UNHEALTHY, f"{detail}: out of balancing"
                self._failing_since[instance_id] = time.monotonic()
        elif inst.status == InstanceStatus.STARTED:
            inst.status, inst.detail = InstanceStatus.PREPARING, "waiting for the health check to pass"
        elif inst.status == InstanceStatus.UNHEALTHY:
            inst.detail = f"{detail}: out of balancing"

    # --- starting an instance -----------------------------------------------------------

    def _background(self, instance_id: str) -> None:
        if instance_id in self._busy:
            return
        self._busy.add(instance_id)

        def work() -> None:
            try:
                self.starter.start(instance_id)
            except Exception as e:
                log.exception("instance %s could not be started", instance_id)
                self._start_failed(instance_id, str(getattr(e, "detail", e)))
            finally:
                self._busy.discard(instance_id)

        self._pool.submit(work)

    def _start_failed(self, instance_id: str, reason: str) -> None:
        restarts = 0
        with self.db.transaction() as s:
            inst = s.get(NodeInstance, instance_id)
            if inst is not None and inst.workload_id is None and inst.status not in INSTANCE_GONE:
                inst.status, inst.detail = InstanceStatus.UNHEALTHY, f"could not start: {reason}"
                inst.restarts += 1
                restarts = inst.restarts
        self._not_before[instance_id] = time.monotonic() + min(MAX_BACKOFF_S, 2.0 ** min(restarts, 5))


def _worst_first(insts: list[NodeInstance]) -> list[NodeInstance]:
    """Which instances to retire first: not-yet-healthy ones, then the oldest."""
    return sorted(
        insts, key=lambda i: (i.status == InstanceStatus.HEALTHY, -(as_utc(i.created_at).timestamp()))
    )
