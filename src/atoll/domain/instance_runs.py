"""The runs of a node instance (spec §6.1): a crashed instance keeps its row and gets a new
Workload, so one instance has had several runs, each with its own log and its own end.

People name a run by how far back it is: 0 is the latest (the one running now, after a restart),
1 the one before it (the crash a restart followed), and so on. The controller keeps an instance's
last ``MAX_RUNS`` workloads (``NodeInstance.workload_ids``, oldest first); their logs outlive them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from atoll.domain import deploy
from atoll.errors import NotFound
from atoll.states import WORKLOAD_FINISHED, WorkloadPhase
from atoll.store.tables import Node, NodeInstance, WorkloadRow

# What controllers/node_start.py keeps of an instance's workloads (``workload_ids[-9:]`` + the new
# one): so no run index past MAX_RUNS - 1 can ever name one, and inputs are bounded by it.
MAX_RUNS = 10


@dataclass(frozen=True)
class Run:
    run: int  # 0 = the latest
    workload_id: str
    state: str
    exit_code: int | None
    started_at: datetime | None
    finished_at: datetime | None
    reason: str  # why it ended, in words; "running" (or why it waits) while it has not


def find_instance(db: Session, node: Node, ref: str | None) -> NodeInstance | None:
    """The instance ``ref`` names, or without a ref the node's first one (None when it never had
    any)."""
    if ref is not None:
        return get_instance(db, node, ref)
    insts = deploy.instances(db, node, finished=True)
    return insts[0] if insts else None


def get_instance(db: Session, node: Node, ref: str) -> NodeInstance:
    """The node's instance ``ref`` (a deleted one too: its logs stay readable), else a 404."""
    inst = next((i for i in deploy.instances(db, node, finished=True) if i.id == ref), None)
    if inst is None:
        raise NotFound(f"node {node.name!r} has no instance {ref!r}", field="instance")
    return inst


def workload_of(inst: NodeInstance, run: int) -> str | None:
    """The workload of the instance's ``run`` (0 = the latest); None for run 0 of an instance
    that has not started yet. A run it does not have is a 404 naming ``run``."""
    ids = inst.workload_ids or []
    if run == 0 and not ids:
        return None
    if not 0 <= run < len(ids):
        raise NotFound(_no_run(inst, run, len(ids)), field="run")
    return ids[-1 - run]


def _no_run(inst: NodeInstance, run: int, kept: int) -> str:
    if kept <= 1:
        return f"instance {inst.id} has no run {run}: it has not restarted (run 0 is its only run)"
    older = " (older ones are not kept)" if kept >= MAX_RUNS else ""
    return f"instance {inst.id} has no run {run}: its runs are 0 (the latest) to {kept - 1}{older}"


def runs(db: Session, inst: NodeInstance) -> list[Run]:
    """The instance's runs, newest first, each with the reason it ended."""
    ids = list(reversed(inst.workload_ids or []))
    rows = {w.id: w for w in db.scalars(select(WorkloadRow).where(WorkloadRow.id.in_(ids)))} if ids else {}
    out: list[Run] = []
    for index, wid in enumerate(ids):
        wl = rows.get(wid)
        if wl is None:  # its project's workloads were purged; the id alone still names its log
            out.append(Run(index, wid, "unknown", None, None, None, "no record of this run"))
            continue
        out.append(Run(index, wid, wl.state, wl.exit_code, wl.started_at, wl.finished_at, reason(wl)))
    return out


def reason(wl: WorkloadRow) -> str:
    """Why a run ended, in words: the recorded reason (a failed health check, a stop, a limit),
    else its exit code; a run that has not ended is "running" or says what it waits for."""
    if wl.state not in WORKLOAD_FINISHED:
        if wl.state == WorkloadPhase.QUEUED:
            return f"waiting: {wl.wait_reason}" if wl.wait_reason else "waiting for the scheduler"
        if wl.state == WorkloadPhase.STOPPING:
            return f"stopping: {wl.stop_reason}" if wl.stop_reason else "stopping"
        return "running"
    if wl.stop_reason:
        return wl.stop_reason
    if wl.exit_code is not None:
        return f"exited with code {wl.exit_code}"
    return "lost: the runtime has no record of it" if wl.state == WorkloadPhase.LOST else wl.state.lower()
