"""Projects' Docker images (spec §4.3): built from a Dockerfile, immutable once built.

An image is a project's resource (the quota counts them per community, as DataSphere does). The
images controller builds it on the installation's Docker daemon, checks that it has what Atoll
runs in it (python3 and pip), and keeps it in the registry; ``reference`` is then where it is kept
and ``image_id`` the daemon's content id, which is what workloads run (a tag may move, an id not).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from atoll.states import ImageStatus
from atoll.store.tables.base import Base, new_id, utcnow


class ProjectImage(Base):
    __tablename__ = "project_images"
    __table_args__ = (UniqueConstraint("project_id", "name", "tag"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("img"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    community_id: Mapped[str] = mapped_column(String(32), index=True)  # the quota counts per community
    name: Mapped[str] = mapped_column(String(63))  # the repository, e.g. "tensorflow"
    tag: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(String(512), default="")
    dockerfile: Mapped[str] = mapped_column(Text)
    # Credentials for a private base image: a user name and the project secret holding the password.
    username: Mapped[str | None] = mapped_column(String(128), default=None)
    password_secret: Mapped[str | None] = mapped_column(String(63), default=None)
    status: Mapped[str] = mapped_column(String(16), default=ImageStatus.PENDING, index=True)
    detail: Mapped[str] = mapped_column(String(1500), default="")
    failed_step: Mapped[str] = mapped_column(String(512), default="")  # "Step 3/4 : RUN make"
    log: Mapped[str] = mapped_column(Text, default="")  # the build's output (bounded)
    reference: Mapped[str] = mapped_column(String(512), default="")
    image_id: Mapped[str] = mapped_column(String(100), default="")
    python_version: Mapped[str] = mapped_column(String(32), default="")
    # Whether it has JupyterLab of its own; else its notebooks get Atoll's, mounted read-only.
    has_jupyterlab: Mapped[bool] = mapped_column(Boolean, default=False)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    build_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    created_by: Mapped[str | None] = mapped_column(String(32), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    built_at: Mapped[datetime | None] = mapped_column(default=None)
