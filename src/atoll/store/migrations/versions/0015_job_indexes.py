"""jobs: an index for a project's jobs in keyset order, and one for the data-expiry sweep

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 05:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_jobs_project_created", "jobs", ["project_id", "created_at", "id"])
    op.create_index("ix_jobs_data_expires_at", "jobs", ["data_expires_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_data_expires_at", table_name="jobs")
    op.drop_index("ix_jobs_project_created", table_name="jobs")
