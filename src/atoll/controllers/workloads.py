"""The workload controller: admit queued Workloads, start and stop them on the runtime, meter
them, and record how they ended. One tick is idempotent; a restarted server converges again
from the database and what the runtime re-adopts, so nothing is orphaned or lost.
"""

from __future__ import annotations

import logging
import signal as signals
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from atoll.capacity import Inventory
from atoll.controllers.metering import bill, meter
from atoll.controllers.scheduler import (
    Cluster,
    ConfigInfo,
    Decision,
    Pool,
    ProjectState,
    Request,
    schedule,
)
from atoll.domain import audit
from atoll.domain.communities import restrictions_of
from atoll.domain.secrets import SecretBox, project_env
from atoll.domain.workloads import run_identity
from atoll.runtime.base import (
    Mount,
    PythonEnv,
    Resources,
    Runtime,
    UnknownWorkload,
    Workload,
    WorkloadState,
    WorkloadStatus,
)
from atoll.runtime.local.netns import NetworkIsolation
from atoll.runtime.router import RuntimeRouter
from atoll.states import WORKLOAD_STARTED, Desired, WorkloadPhase
from atoll.storage.layout import DataLayout
from atoll.store.db import Database
from atoll.store.tables import Community, Configuration, Job, Project, User, WorkloadRow, as_utc, utcnow

log = logging.getLogger("atoll.workloads")


def _ts(unix: float | None) -> datetime | None:
    return datetime.fromtimestamp(unix, UTC) if unix else None


def _storage(wl: WorkloadRow) -> float:
    return float(wl.spec.storage_gb)


class WorkloadController:
    def __init__(
        self,
        db: Database,
        runtime: RuntimeRouter,
        box: SecretBox,
        inventory: Callable[[], Inventory],
        overcommit: float = 1.0,
        tick_s: float = 1.0,
        storage_gb: float = 0.0,
        uid_base: int = 0,
        notify: Callable[[str], None] = lambda _kind: None,
        layout: DataLayout | None = None,
        networks: NetworkIsolation | None = None,
    ) -> None:
        # Told the kind of each workload that started or ended (its controller waits on it), once
        # the change is committed: a controller woken earlier would read the old state.
        self.notify = notify
        self._changed: set[str] = set()
        self.db = db
        self.runtime = runtime
        self.box = box
        self.inventory = inventory
        self.overcommit = overcommit
        self.storage_gb = storage_gb  # per machine, for working-storage reservations
        self.tick_s = tick_s
        self.uid_base = uid_base
        self.layout = layout  # where each project's /tmp is (None: workloads share the machine's)
        self.networks = networks  # a network namespace per project (None: the shared loopback)
        # Stops wait up to their grace period: they run beside the loop, not in it.
        self._stopper = ThreadPoolExecutor(max_workers=4, thread_name_prefix="atoll-stop")
        self._stopping: set[str] = set()

    def _rt(self, wl: WorkloadRow) -> Runtime:
        """The runtime that started ``wl`` (named on its row)."""
        return self.runtime.named(wl.runtime, wl.id)

    # --- startup ------------------------------------------------------------------------

    def reconcile_startup(self) -> None:
        """After a restart: adopt what the runtime still runs, close what it cannot account for."""
        known = {st.id: st for st in self.runtime.adopt()}
        with self.db.transaction() as s:
            rows = s.scalars(select(WorkloadRow).where(WorkloadRow.state.in_(WORKLOAD_STARTED))).all()
            for wl in rows:
                st = known.get(wl.id)
                if st is None:
                    self._finish(
                        s, wl, WorkloadPhase.LOST, None, "the runtime has no record of it after a restart"
                    )
                elif st.state.finished:
                    self._record_end(s, wl, st)
                else:
                    log.info("re-adopted workload %s (%s)", wl.id, wl.kind)

    # --- the loop -----------------------------------------------------------------------

    name = "workloads"

    def interval(self, base: float) -> float:
        return base

    def close(self) -> None:
        pass

    def tick(self, now: datetime | None = None) -> None:
        now = now or utcnow()
        with self.db.transaction() as s:
            self._poll(s)
            for order in meter(s, now):
                wl = s.get(WorkloadRow, order.workload_id)
                if wl is not None and wl.desired != Desired.STOP:
                    wl.desired = Desired.STOP
                    wl.stop_reason = order.reason
                    wl.stop_signal = int(signals.SIGTERM)
        with self.db.transaction() as s:
            self._apply_stops(s)
        with self.db.transaction() as s:
            self._admit(s)
        self._tell()

    def _tell(self) -> None:
        kinds, self._changed = self._changed, set()
        for kind in kinds:
            self.notify(kind)

    def _poll(self, s: Session) -> None:
        for wl in s.scalars(select(WorkloadRow).where(WorkloadRow.state.in_(WORKLOAD_STARTED))):
            try:
                st = self._rt(wl).status(wl.id)
            except UnknownWorkload:
                self._finish(s, wl, WorkloadPhase.LOST, None, "the runtime lost track of it")
                continue
            if st.state.finished:
                self._record_end(s, wl, st)

    def _record_end(self, s: Session, wl: WorkloadRow, st: WorkloadStatus) -> None:
        state = {WorkloadState.EXITED: WorkloadPhase.EXITED, WorkloadState.LOST: WorkloadPhase.LOST}.get(
            st.state, WorkloadPhase.FAILED
        )
        if wl.desired == Desired.STOP and st.state is not WorkloadState.LOST:
            # Stopped on request: it did not fail on its own.
            state = WorkloadPhase.EXITED if st.exit_code == 0 else WorkloadPhase.FAILED
        self._finish(s, wl, state, st.exit_code, st.detail, _ts(st.finished_at))

    def _finish(
        self,
        s: Session,
        wl: WorkloadRow,
        state: str,
        exit_code: int | None,
        detail: str,
        at: datetime | None = None,
    ) -> None:
        end = at or utcnow()
        bill(s, wl, end)
        wl.state = state
        wl.exit_code = exit_code
        wl.finished_at = end
        if not wl.stop_reason and state != WorkloadPhase.EXITED:
            wl.stop_reason = detail
        self._stopping.discard(wl.id)
        self._changed.add(wl.kind)
        try:
            rt = self._rt(wl)
            if wl.stop_reason:
                rt.append_system_log(wl.id, f"stopped: {wl.stop_reason}")
            rt.forget(wl.id)
        except UnknownWorkload:
            pass

    def _apply_stops(self, s: Session) -> None:
        for wl in s.scalars(
            select(WorkloadRow).where(
                WorkloadRow.desired == Desired.STOP,
                WorkloadRow.state.in_((WorkloadPhase.QUEUED, WorkloadPhase.RUNNING)),
            )
        ):
            if wl.state == WorkloadPhase.QUEUED:
                self._changed.add(wl.kind)
                wl.state = WorkloadPhase.FAILED
                wl.finished_at = utcnow()
                wl.stop_reason = wl.stop_reason or "cancelled before it started"
                continue
            wl.state = WorkloadPhase.STOPPING
            if wl.id not in self._stopping:
                self._stopping.add(wl.id)
                try:
                    rt = self._rt(wl)
                    rt.append_system_log(wl.id, f"stopping: {wl.stop_reason}")
                except UnknownWorkload:
                    continue  # the next poll finds it gone
                self._stopper.submit(rt.stop, wl.id, wl.stop_signal, wl.stop_grace_s)

    # --- admission ----------------------------------------------------------------------

    def _catalog(self, s: Session) -> dict[str, ConfigInfo]:
        return {
            c.name: ConfigInfo(
                c.name, c.vcpu, c.ram_gb, c.gpu_count, c.gpu_type, c.units_per_second, c.enabled
            )
            for c in s.scalars(select(Configuration))
        }

    def _admit(self, s: Session) -> None:
        queued = list(
            s.scalars(
                select(WorkloadRow).where(
                    WorkloadRow.state == WorkloadPhase.QUEUED, WorkloadRow.desired == Desired.RUN
                )
            )
        )
        if not queued:
            return
        inv = self.inventory()
        catalog = self._catalog(s)
        pool = Cluster(
            [
                Pool(
                    cpus=m.cpus * self.overcommit,
                    memory_gb=m.memory_gb * self.overcommit,
                    gpus={g.index: g.name for g in m.gpus},
                    host=m.name,
                    address=m.address,
                    storage_gb=self.storage_gb,
                )
                for m in inv.machines()
            ],
            elastic=inv.elastic,
        )
        projects: dict[str, ProjectState] = {}
        community_cpus: dict[str, float] = {}
        for wl in s.scalars(select(WorkloadRow).where(WorkloadRow.state.in_(WORKLOAD_STARTED))):
            c = catalog.get(wl.configuration or "")
            if c is None:
                continue
            pool.hold(c, list(wl.gpu_ids or []), wl.node, _storage(wl))
            community_cpus[wl.community_id] = community_cpus.get(wl.community_id, 0.0) + c.vcpu
            ps = projects.setdefault(wl.project_id, ProjectState())
            ps.running_units_per_hour += c.units_per_hour
        for wl in queued:
            if wl.project_id in projects and projects[wl.project_id].max_units_per_hour is not None:
                continue
            project = s.get(Project, wl.project_id)
            community = s.get(Community, wl.community_id)
            ps = projects.setdefault(wl.project_id, ProjectState())
            if project is not None:
                ps.balance = project.balance
                ps.max_units_per_hour = project.max_units_per_hour
            if community is not None:
                allowed = restrictions_of(community)["allowedConfigurations"]
                ps.allowed = set(allowed) if allowed is not None else None
        requests = [
            Request(
                wl.id,
                wl.project_id,
                wl.community_id,
                tuple(wl.configurations),
                as_utc(wl.created_at),
                _storage(wl),
            )
            for wl in queued
        ]
        by_id = {wl.id: wl for wl in queued}
        for d in schedule(requests, pool, catalog, projects, community_cpus):
            self._apply(s, by_id[d.workload_id], d, catalog)

    def _apply(self, s: Session, wl: WorkloadRow, d: Decision, catalog: dict[str, ConfigInfo]) -> None:
        if d.action == "wait":
            wl.wait_reason = d.reason
            return
        if d.action == "fail":
            self._changed.add(wl.kind)
            wl.state = WorkloadPhase.FAILED
            wl.finished_at = utcnow()
            wl.stop_reason = d.reason
            return
        assert d.configuration is not None
        cfg = catalog[d.configuration]
        spec = wl.spec
        secret_env: dict[str, str] = {}
        project = s.get(Project, wl.project_id)
        try:
            if spec.with_secrets and project is not None:
                secret_env = project_env(s, self.box, project)
                if secret_env:
                    _audit_secret_read(s, wl, project, sorted(secret_env))
            for name, sealed in spec.sealed_env.items():
                secret_env[name] = self.box.open(sealed.encode())
            rt = self.runtime.for_image(spec.image)
            run_as = run_identity(s, wl.project_id, self.uid_base)
            tmp_dir = None
            if self.layout is not None and run_as is not None:
                self.layout.ensure_project(wl.project_id, run_as)
                tmp_dir = self.layout.project_tmp(wl.project_id)
            net = None
            if self.networks is not None and run_as is not None and rt.uses_project_netns:
                net = self.networks.for_project(wl.project_id)
        except Exception as e:  # one project's broken secret must not block everyone's admission
            wl.state = WorkloadPhase.FAILED
            wl.finished_at = utcnow()
            wl.stop_reason = f"could not start: {getattr(e, 'detail', e)}"
            return
        workload = Workload(
            id=wl.id,
            command=list(spec.command),
            resources=Resources(cpus=cfg.vcpu, memory_mb=int(cfg.ram_gb * 1024), gpus=cfg.gpu_count),
            workdir=Path(spec.workdir),
            env={**spec.env, "ATOLL_CONFIGURATION": cfg.name},
            secret_env=secret_env,
            mounts=tuple(Mount(Path(m.source), m.target, read_only=m.read_only) for m in spec.mounts),
            host_env=dict(spec.host_env),
            python=PythonEnv(Path(spec.python.prefix), spec.python.venv) if spec.python else None,
            cwd=spec.cwd,
            ports=tuple(spec.ports),
            gpu_ids=d.gpu_ids,
            labels={"kind": wl.kind, "owner": wl.owner_id, "project": wl.project_id},
            run_as=run_as,
            # Its login name is its project's: the terminal prompt and `whoami` say whose it is.
            user_name=project.name if project is not None and run_as is not None else None,
            warm=spec.warm,
            image=spec.image,
            container_ports=tuple(spec.container_ports),
            node=d.host,
            tmp_dir=tmp_dir,
            netns=net.path if net else None,
            address=net.address if net else None,
        )
        # A stop (a cancel) may have come in since the queue was read: take the row's lock and look
        # again, so a workload stopped before its start never starts (PostgreSQL waits here for a
        # concurrent cancel to commit; SQLite serializes writers anyway).
        desired = s.execute(
            select(WorkloadRow.desired).where(WorkloadRow.id == wl.id).with_for_update()
        ).scalar_one()
        if desired != Desired.RUN:
            return  # _apply_stops closes it on the next tick
        wl.configuration = cfg.name
        wl.gpu_ids = list(d.gpu_ids)
        wl.node = d.host
        wl.host = rt.address_of(workload, d.address)
        wl.wait_reason = ""
        try:
            # Recorded before the start: the workload's later calls go to that runtime.
            wl.runtime = rt.name
            st = self.runtime.start(workload)
        except Exception as e:  # a start that fails is the workload's failure, not the loop's
            log.warning("workload %s failed to start: %s", wl.id, e)
            wl.state = WorkloadPhase.FAILED
            wl.finished_at = utcnow()
            wl.stop_reason = f"could not start: {e}"
            return
        wl.state = WorkloadPhase.RUNNING
        wl.started_at = _ts(st.started_at) or utcnow()
        self._changed.add(wl.kind)


def _audit_secret_read(s: Session, wl: WorkloadRow, project: Project, names: list[str]) -> None:
    """A workload start that hands the project's secrets to its code is one audit record (names,
    never values), charged to whoever asked for the workload."""
    community = s.get(Community, project.community_id)
    starter = _starter(s, wl)
    audit.record(
        s,
        action="secret_read",
        organization_id=community.organization_id if community else None,
        actor_id=starter.id if starter else None,
        actor=starter.username if starter else "",
        via="workload",
        resource_type="project",
        resource_id=project.id,
        detail=f"{len(names)} secret(s) {', '.join(names)[:300]} for {wl.kind} workload {wl.id}",
    )


def _starter(s: Session, wl: WorkloadRow) -> User | None:
    """Who asked for the workload: its owner is a user, or (a job's run) the job."""
    user = s.get(User, wl.owner_id) if wl.owner_id else None
    if user is None and wl.kind == "job":
        job = s.get(Job, wl.owner_id)
        user = s.get(User, job.created_by) if job is not None and job.created_by else None
    return user
