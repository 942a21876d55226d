"""signin_throttles: failed sign-ins per account name and per client address, and lockouts

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signin_throttles",
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lockouts", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope", "subject"),
    )
    op.create_index("ix_signin_throttles_updated_at", "signin_throttles", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_signin_throttles_updated_at", table_name="signin_throttles")
    op.drop_table("signin_throttles")
