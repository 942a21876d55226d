"""workload placement: the cluster machine and the address its ports are reached at

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workloads") as batch:
        batch.add_column(sa.Column("node", sa.String(length=64), nullable=False, server_default=""))
        batch.add_column(sa.Column("host", sa.String(length=255), nullable=False, server_default="127.0.0.1"))


def downgrade() -> None:
    with op.batch_alter_table("workloads") as batch:
        batch.drop_column("host")
        batch.drop_column("node")
