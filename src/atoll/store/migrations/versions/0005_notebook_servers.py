"""notebook servers and notebook runs

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notebook_servers",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("live_project_id", sa.String(length=32), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("configuration", sa.String(length=32), nullable=False),
        sa.Column("opened_by", sa.String(length=32), nullable=False),
        sa.Column("workload_id", sa.String(length=32), nullable=True),
        sa.Column("port", sa.Integer(), nullable=True),
        sa.Column("token", sa.LargeBinary(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ready_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stopping_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_activity_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_activity", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("live_project_id"),
    )
    op.create_index("ix_notebook_servers_created_at", "notebook_servers", ["created_at"])
    op.create_index("ix_notebook_servers_project_id", "notebook_servers", ["project_id"])
    op.create_index("ix_notebook_servers_state", "notebook_servers", ["state"])
    op.create_table(
        "notebook_runs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("notebook_id", sa.String(length=200), nullable=False),
        sa.Column("configuration", sa.String(length=32), nullable=False),
        sa.Column("input_variables", sa.JSON(), nullable=False),
        sa.Column("output_variable_names", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("workload_id", sa.String(length=32), nullable=True),
        sa.Column("output_variables", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_notebook_runs_created_at", "notebook_runs", ["created_at"])
    op.create_index("ix_notebook_runs_project_id", "notebook_runs", ["project_id"])
    op.create_index("ix_notebook_runs_status", "notebook_runs", ["status"])


def downgrade() -> None:
    op.drop_index("ix_notebook_runs_status", table_name="notebook_runs")
    op.drop_index("ix_notebook_runs_project_id", table_name="notebook_runs")
    op.drop_index("ix_notebook_runs_created_at", table_name="notebook_runs")
    op.drop_table("notebook_runs")
    op.drop_index("ix_notebook_servers_state", table_name="notebook_servers")
    op.drop_index("ix_notebook_servers_project_id", table_name="notebook_servers")
    op.drop_index("ix_notebook_servers_created_at", table_name="notebook_servers")
    op.drop_table("notebook_servers")
