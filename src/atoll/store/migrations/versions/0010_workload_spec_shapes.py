"""workload_spec_shapes: workload rows name the runtime that runs them, mounts are objects

Rows written before each workload recorded its runtime say the default's ("local") even for a
container (an image always ran on Docker); mounts were [source, target] or [source, target, "ro"]
lists. Both are rewritten to the shapes the code reads now. Data only: no column changes.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 12:00:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_workloads = sa.table(
    "workloads", sa.column("id", sa.String), sa.column("spec", sa.JSON), sa.column("runtime", sa.String)
)


def _mount(m: Any) -> Any:
    if isinstance(m, list):
        return {"source": m[0], "target": m[1], **({"readOnly": True} if "ro" in m[2:] else {})}
    return m


def upgrade() -> None:
    conn = op.get_bind()
    for wid, spec, runtime in conn.execute(
        sa.select(_workloads.c.id, _workloads.c.spec, _workloads.c.runtime)
    ):
        if not isinstance(spec, dict):
            continue
        new_spec = (
            {**spec, "mounts": [_mount(m) for m in spec.get("mounts", [])]} if spec.get("mounts") else spec
        )
        new_runtime = "docker" if spec.get("image") else runtime
        if new_spec != spec or new_runtime != runtime:
            conn.execute(
                sa.update(_workloads).where(_workloads.c.id == wid).values(spec=new_spec, runtime=new_runtime)
            )


def downgrade() -> None:
    conn = op.get_bind()
    for wid, spec in conn.execute(sa.select(_workloads.c.id, _workloads.c.spec)):
        if isinstance(spec, dict) and spec.get("mounts"):
            old = [
                [m["source"], m["target"], *(["ro"] if m.get("readOnly") else [])]
                if isinstance(m, dict)
                else m
                for m in spec["mounts"]
            ]
            conn.execute(
                sa.update(_workloads).where(_workloads.c.id == wid).values(spec={**spec, "mounts": old})
            )
