"""Environments (issue 17): locked package sets on a Python version that workloads run in.

A row with no project is one of the installation's built-in environments (registered from
envs/builtins.py at start); a row of a project is that project's own, made by its Editors from
a list of requirements, alone or on top of a built-in one. The build itself (uv, into the shared
content-addressed cache) belongs to the environments controller, which keeps its state, size
and log here.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from atoll.states import EnvironmentStatus
from atoll.store.tables.base import Base, new_id, utcnow


class EnvironmentRow(Base):
    __tablename__ = "environments"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("env"))
    # None: a built-in environment, shared by every project.
    project_id: Mapped[str | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True, default=None
    )
    name: Mapped[str] = mapped_column(String(63))
    title: Mapped[str] = mapped_column(String(128), default="")
    description: Mapped[str] = mapped_column(String(512), default="")
    # The built-in environment it is made on top of (its pins, with this one's requirements over them).
    base: Mapped[str | None] = mapped_column(String(63), default=None)
    # The built-in one a project without a default environment of its own runs in.
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    # Built when the controller gets to it; a big built-in one waits until a project chooses it
    # or an admin asks (`atoll env build`).
    wanted: Mapped[bool] = mapped_column(Boolean, default=True)
    python_version: Mapped[str] = mapped_column(String(16))
    # What it asked for, as given (for a built-in: its lock file's pins).
    requirements: Mapped[list[str]] = mapped_column(JSON, default=list)
    # What the build resolves: the base's pins, those the requirements name replaced, then the requirements.
    resolved: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default=EnvironmentStatus.PENDING, index=True)
    detail: Mapped[str] = mapped_column(String(1500), default="")
    key: Mapped[str] = mapped_column(String(64), default="")  # the build's content key, once built
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    packages: Mapped[int | None] = mapped_column(Integer, default=None)
    build_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    log: Mapped[str] = mapped_column(Text, default="")  # uv's output of the last build (bounded)
    created_by: Mapped[str | None] = mapped_column(String(32), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    built_at: Mapped[datetime | None] = mapped_column(default=None)
