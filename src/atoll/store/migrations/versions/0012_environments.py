"""environments: the built-in environments' build state and projects' own environments

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 22:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "environments",
        sa.Column("id", sa.String(length=32), primary_key=True),
        sa.Column("project_id", sa.String(length=32), sa.ForeignKey("projects.id", ondelete="CASCADE")),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("title", sa.String(length=128), nullable=False),
        sa.Column("description", sa.String(length=512), nullable=False),
        sa.Column("base", sa.String(length=63)),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("wanted", sa.Boolean(), nullable=False),
        sa.Column("python_version", sa.String(length=16), nullable=False),
        sa.Column("requirements", sa.JSON(), nullable=False),
        sa.Column("resolved", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.String(length=1500), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger()),
        sa.Column("packages", sa.Integer()),
        sa.Column("build_seconds", sa.Float()),
        sa.Column("log", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=32)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("built_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("project_id", "name"),
    )
    op.create_index("ix_environments_project_id", "environments", ["project_id"])
    op.create_index("ix_environments_status", "environments", ["status"])
    # Not in batch mode: SQLite's batch copies the table, and dropping the old projects table
    # would cascade to every row that refers to it.
    op.add_column("projects", sa.Column("default_environment", sa.String(length=63), nullable=True))


def downgrade() -> None:
    op.drop_column("projects", "default_environment")  # SQLite >= 3.35 drops a column in place
    op.drop_index("ix_environments_status", "environments")
    op.drop_index("ix_environments_project_id", "environments")
    op.drop_table("environments")
