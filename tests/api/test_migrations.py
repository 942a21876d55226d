"""Migrations run on SQLite and PostgreSQL: up from empty, down to nothing, up again, and the
migration scripts describe exactly the ORM tables (no drift)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from atoll.store.db import Database
from atoll.store.migrate import downgrade, upgrade
from atoll.store.tables import Base


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
