"""Metering: units for every running Workload, per second, and the limits that stop work.

Called on a short tick by the workload controller. Usage is billed from each Workload's start
to now, rounded up to whole seconds (spec §7.1); the delta since the last tick becomes a
UsageRecord and comes off the project balance. Limits then act on running work (spec §7.2):
balance ≤ 0 stops the project's Workloads; `maxUnitsPerExecution` stops the one that reaches
it; more than `maxUnitsPerHour` used over the last hour stops the project's Workloads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from atoll.domain.billing import units_for
from atoll.states import Desired, WorkloadPhase
from atoll.store.tables import Community, Configuration, Project, UsageRecord, WorkloadRow, as_utc

BALANCE_STOP = "project balance is insufficient"


@dataclass(frozen=True)
class StopOrder:
    workload_id: str
    reason: str


def bill(db: Session, wl: WorkloadRow, until: datetime) -> int:
    """Bring one Workload's usage up to `until`; returns the units added."""
    if wl.started_at is None or wl.configuration is None:
        return 0
    cfg = db.get(Configuration, wl.configuration)
    ups = cfg.units_per_second if cfg else 0
    start = as_utc(wl.started_at)
    elapsed = max((until - start).total_seconds(), 0.0)
    total = units_for(ups, elapsed)
    delta = total - wl.units
    if delta <= 0:
        return 0
    since = start + timedelta(seconds=wl.metered_seconds)
    community = db.get(Community, wl.community_id)
    db.add(
        UsageRecord(
            project_id=wl.project_id,
            community_id=wl.community_id,
            billing_account_id=community.billing_account_id if community else None,
            workload_id=wl.id,
            configuration=wl.configuration,
            started_at=since,
            ended_at=until,
            seconds=max(round(elapsed - wl.metered_seconds), 0),
            units=delta,
        )
    )
    # One UPDATE so concurrent billing never loses a decrement.
    db.execute(
        update(Project)
        .where(Project.id == wl.project_id, Project.balance.is_not(None))
        .values(balance=Project.balance - delta)
    )
    wl.units = total
    wl.metered_seconds = elapsed
    return delta


def meter(db: Session, now: datetime) -> list[StopOrder]:
    """Bill every running Workload up to `now` and return the ones the limits stop."""
    running = list(db.scalars(select(WorkloadRow).where(WorkloadRow.state == WorkloadPhase.RUNNING)))
    for wl in running:
        bill(db, wl, now)
    db.flush()
    orders: dict[str, StopOrder] = {}
    projects = {wl.project_id for wl in running if wl.desired == Desired.RUN}
    for pid in projects:
        project = db.get(Project, pid)
        if project is None:
            continue
        mine = [wl for wl in running if wl.project_id == pid and wl.desired == Desired.RUN]
        if project.balance is not None and project.balance <= 0:
            for wl in mine:
                orders[wl.id] = StopOrder(wl.id, BALANCE_STOP)
            continue
        if project.max_units_per_execution is not None:
            for wl in mine:
                if wl.units >= project.max_units_per_execution:
                    orders[wl.id] = StopOrder(
                        wl.id,
                        f"the execution used {wl.units} units, reaching the project's maxUnitsPerExecution "
                        f"{project.max_units_per_execution}",
                    )
        if project.max_units_per_hour is not None:
            used = db.scalar(
                select(func.coalesce(func.sum(UsageRecord.units), 0)).where(
                    UsageRecord.project_id == pid, UsageRecord.ended_at > now - timedelta(hours=1)
                )
            )
            if int(used or 0) > project.max_units_per_hour:
                for wl in mine:
                    orders.setdefault(
                        wl.id,
                        StopOrder(
                            wl.id,
                            f"the project used {used} units in the last hour, over its maxUnitsPerHour "
                            f"{project.max_units_per_hour}",
                        ),
                    )
    return list(orders.values())
