"""project_images: projects' Docker images built from Dockerfiles, and the one a project activated

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 01:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "project_images",
        sa.Column("id", sa.String(length=32), primary_key=True),
        sa.Column(
            "project_id",
            sa.String(length=32),
            sa.ForeignKey("projects.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("community_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("tag", sa.String(length=128), nullable=False),
        sa.Column("description", sa.String(length=512), nullable=False),
        sa.Column("dockerfile", sa.Text(), nullable=False),
        sa.Column("username", sa.String(length=128)),
        sa.Column("password_secret", sa.String(length=63)),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.String(length=1500), nullable=False),
        sa.Column("failed_step", sa.String(length=512), nullable=False),
        sa.Column("log", sa.Text(), nullable=False),
        sa.Column("reference", sa.String(length=512), nullable=False),
        sa.Column("image_id", sa.String(length=100), nullable=False),
        sa.Column("python_version", sa.String(length=32), nullable=False),
        sa.Column("has_jupyterlab", sa.Boolean(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger()),
        sa.Column("build_seconds", sa.Float()),
        sa.Column("created_by", sa.String(length=32)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("built_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("project_id", "name", "tag"),
    )
    op.create_index("ix_project_images_project_id", "project_images", ["project_id"])
    op.create_index("ix_project_images_community_id", "project_images", ["community_id"])
    op.create_index("ix_project_images_status", "project_images", ["status"])
    # Not in batch mode (see 0012): SQLite's batch would copy the projects table.
    op.add_column("projects", sa.Column("active_image_id", sa.String(length=32), nullable=True))


def downgrade() -> None:
    op.drop_column("projects", "active_image_id")
    op.drop_index("ix_project_images_status", "project_images")
    op.drop_index("ix_project_images_community_id", "project_images")
    op.drop_index("ix_project_images_project_id", "project_images")
    op.drop_table("project_images")
