"""Metering on a real database: units per second rounded up, balance drained, limits act."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from atoll.controllers.metering import BALANCE_STOP, meter
from atoll.domain import billing, catalog
from atoll.store.db import Database
from atoll.store.migrate import upgrade
from atoll.store.tables import BillingAccount, Community, Organization, Project, UsageRecord, WorkloadRow

T0 = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def db(fresh_database_url: str) -> Iterator[Database]:
    d = Database(fresh_database_url)
    upgrade(d.engine)
    with d.transaction() as s:
        catalog.seed(s)
    yield d
    d.dispose()


def _project(d: Database, **limits: int | None) -> tuple[str, str]:
    with d.transaction() as s:
        org = Organization(name="o")
        s.add(org)
        s.flush()
        ba = BillingAccount(organization_id=org.id, name="ba")
        s.add(ba)
        s.flush()
        com = Community(
            organization_id=org.id, name="c", zone_id="local", restrictions={}, billing_account_id=ba.id
        )
        s.add(com)
        s.flush()
        prj = Project(community_id=com.id, name="p", **limits)
        s.add(prj)
        s.flush()
        return prj.id, ba.id


def _run(d: Database, project_id: str, config: str, started: datetime) -> str:
    with d.transaction() as s:
        prj = s.get(Project, project_id)
        assert prj is not None
        wl = WorkloadRow(
            kind="job",
            owner_id="job-x",
            project_id=project_id,
            community_id=prj.community_id,
            configurations=[config],
            configuration=config,
            state="RUNNING",
            started_at=started,
        )
        s.add(wl)
        s.flush()
        return wl.id


def test_units_are_billed_per_second_rounded_up(db: Database) -> None:
    pid, ba = _project(db, balance=1000)
    wid = _run(db, pid, "s1.2", T0)  # 2 units/s
    with db.transaction() as s:
        assert meter(s, T0 + timedelta(seconds=1.4)) == []
    with db.transaction() as s:
        meter(s, T0 + timedelta(seconds=10))
    with db.session() as s:
        wl = s.get(WorkloadRow, wid)
        prj = s.get(Project, pid)
        assert wl is not None and prj is not None
        assert wl.units == 20  # 10 s × 2 units/s
        assert prj.balance == 980
        records = s.scalars(select(UsageRecord).where(UsageRecord.workload_id == wid)).all()
        assert [r.units for r in records] == [4, 16]  # 1.4 s rounds up to 2 s, then the rest
        assert billing.usage_units(s, project_id=pid) == 20
        assert billing.usage_units(s, billing_account_id=ba) == 20
        assert billing.usage_units(s, project_id=pid, since=T0 + timedelta(seconds=5)) == 16


def test_balance_at_zero_stops_the_projects_work(db: Database) -> None:
    pid, _ = _project(db, balance=30)
    w1 = _run(db, pid, "s1.1", T0)
    w2 = _run(db, pid, "s1.2", T0)
    with db.transaction() as s:
        assert meter(s, T0 + timedelta(seconds=5)) == []  # 5 + 10 = 15 units
    with db.transaction() as s:
        orders = meter(s, T0 + timedelta(seconds=10))  # 30 units: balance 0
    assert {o.workload_id for o in orders} == {w1, w2}
    assert all(o.reason == BALANCE_STOP for o in orders)


def test_max_units_per_execution_stops_that_workload(db: Database) -> None:
    pid, _ = _project(db, max_units_per_execution=50)
    big = _run(db, pid, "s1.2", T0)
    small = _run(db, pid, "s1.1", T0 + timedelta(seconds=20))
    with db.transaction() as s:
        orders = meter(s, T0 + timedelta(seconds=25))  # big: 50 units, small: 5
    assert [o.workload_id for o in orders] == [big]
    assert "maxUnitsPerExecution 50" in orders[0].reason
    assert small not in {o.workload_id for o in orders}


def test_max_units_per_hour_over_the_last_hour(db: Database) -> None:
    pid, _ = _project(db, max_units_per_hour=100)
    wid = _run(db, pid, "s1.2", T0)
    with db.transaction() as s:
        assert meter(s, T0 + timedelta(seconds=40)) == []  # 80 units
    with db.transaction() as s:
        orders = meter(s, T0 + timedelta(seconds=60))  # 120 units within the hour
    assert [o.workload_id for o in orders] == [wid] and "maxUnitsPerHour 100" in orders[0].reason
