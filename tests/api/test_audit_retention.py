"""The audit log keeps records for ATOLL_AUDIT_RETENTION_DAYS (0: forever); stale SSO sign-ins go."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from atoll.controllers.housekeeping import Housekeeping
from atoll.domain import audit
from atoll.store.db import Database
from atoll.store.migrate import upgrade
from atoll.store.tables import AuditRecord, utcnow


def _db(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'atoll.db'}")
    upgrade(db.engine)
    return db


def _count(db: Database) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(AuditRecord)) or 0)


def test_records_past_the_retention_are_removed_and_newer_ones_stay(tmp_path: Path) -> None:
    db = _db(tmp_path)
    with db.transaction() as s:
        for days in (400, 100, 1):
            r = audit.record(s, action="create_project", actor="ann")
            r.created_at = utcnow() - timedelta(days=days)
    Housekeeping(db, audit_retention_days=0).tick()
    assert _count(db) == 3  # 0 keeps everything
    Housekeeping(db, audit_retention_days=365).tick()
    assert _count(db) == 2
    Housekeeping(db, audit_retention_days=30).tick()
    with db.session() as s:
        assert [r.actor for r in s.scalars(select(AuditRecord))] == ["ann"]


def test_requests_no_route_took_are_not_recorded(client: TestClient, admin: TestClient) -> None:
    """Anyone can send requests to made-up paths: they must not fill the log (a flood)."""
    before = admin.get("/api/v1/audit-records", params={"pageSize": 1000}).json()["items"]
    for path in ("/api/v1/nope", "/api/v1/projects/x/../../etc", "/whatever"):
        assert client.post(path, json={}).status_code in (404, 405)
    after = admin.get("/api/v1/audit-records", params={"pageSize": 1000}).json()["items"]
    assert len(after) == len(before)
    # A routed call is, anonymous and refused included.
    assert client.post("/api/v1/communities", json={}, headers={"Authorization": ""}).status_code in (
        401,
        422,
    )
    newest = admin.get("/api/v1/audit-records", params={"pageSize": 1}).json()["items"][0]
    assert newest["route"] == "POST /api/v1/communities" and newest["result"] in ("denied", "failed")
