"""Migrations run on SQLite and PostgreSQL: up from empty, down to nothing, up again, and the
migration scripts describe exactly the ORM tables (no drift)."""

from __future__ import annotations

import json

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from atoll.store.db import Database
from atoll.store.migrate import downgrade, upgrade
from atoll.store.tables import Base, Community, MountSpec, Organization, Project, WorkloadRow, WorkloadSpec


def test_upgrade_downgrade_upgrade(fresh_database_url: str) -> None:
    db = Database(fresh_database_url)
    try:
        upgrade(db.engine)
        tables = set(inspect(db.engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        assert "alembic_version" in tables
        upgrade(db.engine)  # idempotent: the server runs it on every start
        downgrade(db.engine, "base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        upgrade(db.engine)
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == [], f"ORM tables differ from the migrations: {diff}"
    finally:
        db.dispose()


def test_sqlite_runs_in_wal_mode(tmp_path: object) -> None:
    db = Database(f"sqlite:///{tmp_path}/wal.db")
    try:
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        db.dispose()


def test_workload_rows_get_their_runtime_and_typed_mounts(fresh_database_url: str) -> None:
    # Rows from before 0010: a container's row said "local", mounts were lists. After the upgrade
    # the code reads them in the current shapes; a downgrade gives the old mounts back.
    db = Database(fresh_database_url)
    try:
        upgrade(db.engine)
        with db.transaction() as s:
            org = Organization(name="m")
            s.add(org)
            s.flush()
            com = Community(organization_id=org.id, name="m", zone_id="local", restrictions={})
            s.add(com)
            s.flush()
            prj = Project(community_id=com.id, name="m")
            s.add(prj)
            s.flush()
            for wid, image in (("wl-old-img", "busybox"), ("wl-old-proc", None)):
                spec = WorkloadSpec(command=["true"], workdir="/w", image=image)
                s.add(
                    WorkloadRow(
                        id=wid,
                        kind="job",
                        owner_id="j",
                        project_id=prj.id,
                        community_id=com.id,
                        spec=spec,
                        runtime="local",
                    )
                )
        downgrade(db.engine, "0009")
        legacy = [["/data/d", "datasets/d", "ro"], ["/home/p", "project-home"]]
        with db.engine.begin() as conn:
            row = conn.execute(text("SELECT spec FROM workloads WHERE id = 'wl-old-img'")).scalar_one()
            spec = json.loads(row) if isinstance(row, str) else row
            conn.execute(
                text("UPDATE workloads SET spec = :spec WHERE id = 'wl-old-img'"),
                {"spec": json.dumps({**spec, "mounts": legacy})},
            )
        upgrade(db.engine)
        with db.session() as s:
            img, proc = s.get(WorkloadRow, "wl-old-img"), s.get(WorkloadRow, "wl-old-proc")
            assert img is not None and proc is not None
            assert (img.runtime, proc.runtime) == ("docker", "local")
            assert img.spec.mounts == [
                MountSpec(source="/data/d", target="datasets/d", read_only=True),
                MountSpec(source="/home/p", target="project-home"),
            ]
        downgrade(db.engine, "0009")
        with db.engine.connect() as conn:
            row = conn.execute(text("SELECT spec FROM workloads WHERE id = 'wl-old-img'")).scalar_one()
            assert (json.loads(row) if isinstance(row, str) else row)["mounts"] == legacy
    finally:
        db.dispose()
