"""What is served: saved models, datasets, nodes, their instances, aliases and their metrics."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from atoll.states import (
    InstanceStatus,
    NodeDesired,
    NodeStatus,
)
from atoll.store.tables.base import Base, new_id, utcnow


class Model(Base):
    """A saved model (spec §8.1): one version of a named model of a project. Its files are blobs;
    ``meta`` is the model directory's meta.json (format, libraries, input/output signature)."""

    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("project_id", "name", "version"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("mdl"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(63))
    version: Mapped[int] = mapped_column(Integer, default=1)
    description: Mapped[str] = mapped_column(String(256), default="")
    format: Mapped[str] = mapped_column(String(32))
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    files: Mapped[dict[str, Any]] = mapped_column(default=dict)  # file name → blob sha256
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    source: Mapped[str] = mapped_column(String(256), default="")  # "job job-…", "notebook", "upload"
    created_by: Mapped[str | None] = mapped_column(String(32), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Dataset(Base):
    """A read-only dataset of a project (spec §4.6), made by a job's ``output-datasets`` from the
    directory it wrote; its files live under the data dir's ``datasets/<id>``."""

    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    # 20 lowercase letters and digits, like DataSphere's resource IDs (config.yaml checks the form)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: Dataset.new_id())
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(63))
    description: Mapped[str] = mapped_column(String(256), default="")
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    size_gb: Mapped[int] = mapped_column(Integer)  # the size the config declared
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)  # what its files take
    job_id: Mapped[str | None] = mapped_column(String(32), default=None)  # the job that made it
    created_by: Mapped[str | None] = mapped_column(String(32), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    @staticmethod
    def new_id() -> str:
        return "ds" + secrets.token_hex(9)


class Node(Base):
    """A deployed service (spec §6.1): instances of a model server, a command or an image.

    ``spec`` holds what an instance runs (models, command or image, port, env), the health check
    and the telemetry endpoint; a change to it bumps ``revision`` and the controller replaces the
    instances one at a time. ``desired`` is RUN, SUSPEND or DELETE; ``status`` is the spec's
    node status (Created, Healthy, Unhealthy, Suspended, Deleting).
    """

    __tablename__ = "nodes"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("node"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(63))
    description: Mapped[str] = mapped_column(String(256), default="")
    kind: Mapped[str] = mapped_column(String(16))  # model | command | image
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    configuration: Mapped[str] = mapped_column(String(32))
    min_instances: Mapped[int] = mapped_column(Integer, default=1)
    max_instances: Mapped[int] = mapped_column(Integer, default=1)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    desired: Mapped[str] = mapped_column(String(8), default=NodeDesired.RUN)
    status: Mapped[str] = mapped_column(String(16), default=NodeStatus.CREATED, index=True)
    detail: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str | None] = mapped_column(String(32), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class NodeInstance(Base):
    """One instance of a node: a Workload plus the balancer's view of it (spec §6.1 statuses:
    Undefined, Created, Started, Preparing, Healthy, Unhealthy, Deleting; Deleted at the end).
    A crashed instance keeps its row and gets a new Workload (``restarts`` counts them)."""

    __tablename__ = "node_instances"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("ins"))
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[str] = mapped_column(String(32), index=True)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    workload_id: Mapped[str | None] = mapped_column(String(32), default=None)
    workload_ids: Mapped[list[str]] = mapped_column(JSON, default=list)  # every run, for their logs
    port: Mapped[int | None] = mapped_column(Integer, default=None)
    # A model server's gRPC face (KServe v2 / Triton); None for command and image nodes.
    grpc_port: Mapped[int | None] = mapped_column(Integer, default=None)
    # An image's own health-check or telemetry port (as a string) → the loopback port it is on.
    side_ports: Mapped[dict[str, int]] = mapped_column(JSON, default=dict, server_default="{}")
    status: Mapped[str] = mapped_column(String(16), default=InstanceStatus.UNDEFINED, index=True)
    detail: Mapped[str] = mapped_column(Text, default="")
    passes: Mapped[int] = mapped_column(Integer, default=0)  # consecutive health checks passed
    fails: Mapped[int] = mapped_column(Integer, default=0)  # ... and failed
    restarts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    healthy_at: Mapped[datetime | None] = mapped_column(default=None)
    deleting_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class Alias(Base):
    """A stable endpoint that splits requests across nodes by weight (spec §6.3). Names are
    unique in the installation: callers name the alias alone (``x-node-alias``)."""

    __tablename__ = "aliases"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("als"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    nodes: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # [{"nodeId", "weight"}]
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str | None] = mapped_column(String(32), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeployMetric(Base):
    """The gateway's counts for one node or alias over one 10-second bucket, for the UI's charts:
    requests, HTTP codes, and a latency histogram (``buckets[i]`` counts requests up to
    ``LATENCY_BUCKETS[i]`` seconds, the last one everything slower)."""

    __tablename__ = "deploy_metrics"
    __table_args__ = (UniqueConstraint("target", "bucket_at", "gateway"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target: Mapped[str] = mapped_column(String(40), index=True)  # "node:<id>" | "alias:<id>"
    gateway: Mapped[str] = mapped_column(String(32), default="")  # which gateway process wrote it
    bucket_at: Mapped[datetime] = mapped_column(index=True)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    codes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    buckets: Mapped[list[int]] = mapped_column(JSON, default=list)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)  # sum of latencies
