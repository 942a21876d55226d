"""project_scoped_tokens: an API token may open one project's JupyterLab and nothing else (the
external IDE link, spec §4.1)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 22:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("project_id", sa.String(length=32), nullable=True))
        batch.create_index("ix_api_tokens_project_id", ["project_id"])


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_index("ix_api_tokens_project_id")
        batch.drop_column("project_id")
