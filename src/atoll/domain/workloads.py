"""Workloads as the domain sees them: submit, ask to stop, read. Controllers do the rest.

A workload's ``WorkloadSpec`` (what it runs, with its ``MountSpec``s and ``PythonEnvSpec``) is
the shape of its row's ``spec`` column (store/tables/compute.py); they are re-exported here for
the code that builds one.

Jobs, notebooks and node instances all become rows here; the workload controller admits them
through the scheduler, starts them on the runtime, meters them and records how they ended.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from atoll.errors import NotFound
from atoll.states import Desired, WorkloadPhase
from atoll.store.tables import MountSpec as MountSpec
from atoll.store.tables import Project, RunIdentity, WorkloadRow, WorkloadSpec
from atoll.store.tables import PythonEnvSpec as PythonEnvSpec


def submit(
    db: Session,
    project: Project,
    *,
    kind: str,
    owner_id: str,
    configurations: list[str],
    spec: WorkloadSpec,
    stop_signal: int = 15,
    stop_grace_s: float = 10.0,
    workload_id: str | None = None,
) -> WorkloadRow:
    """Queue a Workload; the scheduler decides when and on which configuration it starts."""
    wl = WorkloadRow(
        **({"id": workload_id} if workload_id else {}),
        kind=kind,
        owner_id=owner_id,
        project_id=project.id,
        community_id=project.community_id,
        configurations=list(configurations),
        spec=spec,
        stop_signal=stop_signal,
        stop_grace_s=stop_grace_s,
        state=WorkloadPhase.QUEUED,
        wait_reason="queued",
    )
    db.add(wl)
    db.flush()
    return wl


def request_stop(
    db: Session, workload_id: str, reason: str, *, sig: int | None = None, grace: float | None = None
) -> WorkloadRow:
    """Ask for a Workload to stop (idempotent); the first reason given is the one kept."""
    wl = db.get(WorkloadRow, workload_id)
    if wl is None:
        raise NotFound(f"workload {workload_id!r} not found")
    if wl.desired != Desired.STOP:
        wl.desired = Desired.STOP
        wl.stop_reason = wl.stop_reason or reason
        if sig is not None:
            wl.stop_signal = sig
        if grace is not None:
            wl.stop_grace_s = grace
    return wl


def run_identity(db: Session, project_id: str, uid_base: int) -> tuple[int, int] | None:
    """(uid, gid) for the project's workloads, allocated on first use; None when the server cannot
    switch users (not root) or the installation turned it off (uid_base 0)."""
    if uid_base <= 0 or os.geteuid() != 0:
        return None
    rid = db.scalar(select(RunIdentity.id).where(RunIdentity.project_id == project_id))
    if rid is None:
        try:
            with db.begin_nested():
                row = RunIdentity(project_id=project_id)
                db.add(row)
            rid = row.id
        except IntegrityError:  # allocated meanwhile by another thread
            rid = db.scalar(select(RunIdentity.id).where(RunIdentity.project_id == project_id))
    assert rid is not None
    return uid_base + rid, uid_base + rid


def hosts_of(db: Session, workload_ids: Iterable[str | None]) -> dict[str | None, str]:
    """The address each workload's ports are reached at (its cluster machine's; 127.0.0.1 locally,
    and for an id that is None or unknown), in one query."""
    ids = {i for i in workload_ids if i}
    rows = db.execute(select(WorkloadRow.id, WorkloadRow.host).where(WorkloadRow.id.in_(ids)))
    return defaultdict(lambda: "127.0.0.1", {k: v or "127.0.0.1" for k, v in rows})


def host_of(db: Session, workload_id: str | None) -> str:
    return hosts_of(db, [workload_id])[workload_id]
