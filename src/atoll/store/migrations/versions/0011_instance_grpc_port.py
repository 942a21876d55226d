"""instance_grpc_port: a model node's instance also serves KServe v2 / Triton gRPC, on a port of its own;
an image node's instance publishes its health-check and telemetry ports too

grpc_port is null for instances that have no gRPC face (command and image nodes, and those
started before); side_ports maps an image's own health-check or telemetry port to the loopback
port it is published on (empty for other nodes).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 15:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("node_instances") as batch:
        batch.add_column(sa.Column("grpc_port", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("side_ports", sa.JSON(), nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("node_instances") as batch:
        batch.drop_column("side_ports")
        batch.drop_column("grpc_port")
