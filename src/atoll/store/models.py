"""ORM tables. One row type per domain noun; JSON columns hold small structured settings."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from atoll.states import (
    Desired,
    InstanceStatus,
    JobStatus,
    NodeDesired,
    NodeStatus,
    NotebookRunStatus,
    NotebookState,
    WorkloadPhase,
)


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(dt: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything Atoll stores is UTC."""
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def new_id(prefix: str) -> str:
    """Readable, unguessable ids: ``prj-1f3c…`` (prefix names the resource type)."""
    return f"{prefix}-{secrets.token_hex(8)}"


class Base(DeclarativeBase):
    type_annotation_map = {datetime: DateTime(timezone=True), dict[str, Any]: JSON}


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class User(Timestamped, Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("usr"))
    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(254), default="")
    display_name: Mapped[str] = mapped_column(String(128), default="")
    password_hash: Mapped[str] = mapped_column(String(255), default="")
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)


class WebSession(Timestamped, Base):
    """A browser session; the cookie holds a random token, the table only its hash."""

    __tablename__ = "web_sessions"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("ses"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column()


class ApiToken(Timestamped, Base):
    """A personal API token. Shown once; only its sha256 is stored."""

    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("tok"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)


class SignInThrottle(Base):
    """Recent failed sign-ins of one account name or one client address, and its lockout
    (domain/throttle.py). In the database so that limits hold across restarts and processes."""

    __tablename__ = "signin_throttles"
    scope: Mapped[str] = mapped_column(String(16), primary_key=True)  # "account" | "address"
    subject: Mapped[str] = mapped_column(String(128), primary_key=True)  # username | address
    failures: Mapped[int] = mapped_column(Integer, default=0)  # in the window from window_start
    window_start: Mapped[datetime] = mapped_column()
    locked_until: Mapped[datetime | None] = mapped_column(default=None)
    lockouts: Mapped[int] = mapped_column(Integer, default=0)  # in a row: each one lasts longer
    updated_at: Mapped[datetime] = mapped_column(index=True)


class Organization(Timestamped, Base):
    __tablename__ = "organizations"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("org"))
    name: Mapped[str] = mapped_column(String(63), unique=True)
    description: Mapped[str] = mapped_column(String(256), default="")


class Group(Timestamped, Base):
    """A named set of users of one organization; roles can be granted to it."""

    __tablename__ = "groups"
    __table_args__ = (UniqueConstraint("organization_id", "name"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("grp"))
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(63))
    description: Mapped[str] = mapped_column(String(256), default="")


class GroupMember(Timestamped, Base):
    __tablename__ = "group_members"
    group_id: Mapped[str] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class BillingAccount(Timestamped, Base):
    """Pays for the compute of the communities linked to it (spec §7)."""

    __tablename__ = "billing_accounts"
    __table_args__ = (UniqueConstraint("organization_id", "name"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("bil"))
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(63))
    description: Mapped[str] = mapped_column(String(256), default="")
    currency: Mapped[str] = mapped_column(String(8), default="USD")
    # Price of one unit (1 vCPU-second) in `currency`; DataSphere: $0.0000096.
    unit_price: Mapped[float] = mapped_column(Float, default=0.0000096)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Community(Timestamped, Base):
    __tablename__ = "communities"
    __table_args__ = (UniqueConstraint("organization_id", "name"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("com"))
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(63))
    description: Mapped[str] = mapped_column(String(256), default="")
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    zone_id: Mapped[str] = mapped_column(String(63))
    billing_account_id: Mapped[str | None] = mapped_column(
        ForeignKey("billing_accounts.id", ondelete="SET NULL"), default=None, index=True
    )
    # {"allowedConfigurations": [...] | None, "features": {name: bool}}
    restrictions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)


class Project(Timestamped, Base):
    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("community_id", "name"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("prj"))
    community_id: Mapped[str] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(63))
    description: Mapped[str] = mapped_column(String(256), default="")
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    default_configuration: Mapped[str | None] = mapped_column(String(32), default=None)
    vm_inactivity_timeout_s: Mapped[int] = mapped_column(Integer, default=3 * 3600)
    stale_exec_timeout_mode: Mapped[str] = mapped_column(String(16), default="NO_TIMEOUT")
    ide: Mapped[str] = mapped_column(String(16), default="JUPYTER_LAB")
    # Limits in units; None means "no limit".
    balance: Mapped[int | None] = mapped_column(BigInteger, default=None)
    max_units_per_hour: Mapped[int | None] = mapped_column(BigInteger, default=None)
    max_units_per_execution: Mapped[int | None] = mapped_column(BigInteger, default=None)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)


class AccessBinding(Timestamped, Base):
    """A role on a resource granted to a user or a group. The access module reads only these."""

    __tablename__ = "access_bindings"
    __table_args__ = (UniqueConstraint("resource_type", "resource_id", "subject_type", "subject_id", "role"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("acb"))
    resource_type: Mapped[str] = mapped_column(String(32), index=True)
    resource_id: Mapped[str] = mapped_column(String(32), index=True)
    subject_type: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[str] = mapped_column(String(32), index=True)
    role: Mapped[str] = mapped_column(String(32))
    created_by: Mapped[str | None] = mapped_column(String(32), default=None)


class Invite(Timestamped, Base):
    """An invite link to a community or project: whoever accepts it gets `role` there."""

    __tablename__ = "invites"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("inv"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    resource_type: Mapped[str] = mapped_column(String(32))
    resource_id: Mapped[str] = mapped_column(String(32), index=True)
    role: Mapped[str] = mapped_column(String(32))
    created_by: Mapped[str | None] = mapped_column(String(32), default=None)
    expires_at: Mapped[datetime] = mapped_column()
    max_uses: Mapped[int] = mapped_column(Integer, default=1)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class Configuration(Base):
    """A compute configuration of the catalogue (spec §3.1)."""

    __tablename__ = "configurations"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    description: Mapped[str] = mapped_column(String(256), default="")
    vcpu: Mapped[float] = mapped_column(Float)
    ram_gb: Mapped[float] = mapped_column(Float)
    gpu_count: Mapped[int] = mapped_column(Integer, default=0)
    gpu_type: Mapped[str] = mapped_column(String(32), default="")
    vram_gb: Mapped[float] = mapped_column(Float, default=0)
    units_per_second: Mapped[int] = mapped_column(Integer)
    async_units_per_second: Mapped[int | None] = mapped_column(Integer, default=None)
    platform: Mapped[str] = mapped_column(String(64), default="")
    # "everyone", "deposit" (^1), "business" (^2), "local" (laptop preset)
    access_tier: Mapped[str] = mapped_column(String(16), default="everyone")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)


class UsageRecord(Base):
    """Units consumed by one workload over one interval; metering appends, reports sum."""

    __tablename__ = "usage_records"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    community_id: Mapped[str] = mapped_column(String(32), index=True)
    billing_account_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    workload_id: Mapped[str] = mapped_column(String(64), index=True)
    configuration: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column()
    ended_at: Mapped[datetime] = mapped_column()
    seconds: Mapped[int] = mapped_column(Integer)
    units: Mapped[int] = mapped_column(BigInteger)
    note: Mapped[str] = mapped_column(Text, default="")


class Secret(Base):
    """A project secret: the value is encrypted at rest and never returned by the API."""

    __tablename__ = "secrets"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("sec"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(63))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_by: Mapped[str | None] = mapped_column(String(32), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class WorkloadRow(Base):
    """One Workload (a job run, a notebook server, a node instance): desired and actual state.

    Controllers move it QUEUED → STARTING → RUNNING → STOPPING → FINISHED; the scheduler
    admits queued ones; metering bills running ones per second.
    """

    __tablename__ = "workloads"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("wl"))
    kind: Mapped[str] = mapped_column(String(16))  # job | notebook | node
    owner_id: Mapped[str] = mapped_column(String(32), index=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    community_id: Mapped[str] = mapped_column(String(32), index=True)
    # Configurations to try, in order (DataSphere's cloud-instance-types); the chosen one.
    configurations: Mapped[list[str]] = mapped_column(JSON, default=list)
    configuration: Mapped[str | None] = mapped_column(String(32), default=None)
    desired: Mapped[str] = mapped_column(String(8), default=Desired.RUN)
    state: Mapped[str] = mapped_column(String(16), default=WorkloadPhase.QUEUED, index=True)
    wait_reason: Mapped[str] = mapped_column(Text, default="")
    stop_reason: Mapped[str] = mapped_column(Text, default="")
    stop_signal: Mapped[int] = mapped_column(Integer, default=15)
    stop_grace_s: Mapped[float] = mapped_column(Float, default=10.0)
    exit_code: Mapped[int | None] = mapped_column(Integer, default=None)
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)  # command, workdir, env (no secrets), ports
    gpu_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    runtime: Mapped[str] = mapped_column(String(16), default="local")
    # Where it runs: the cluster machine (a Ray node id; "" on one machine) and the address its
    # ports are reached at (notebooks and node instances are routed there).
    node: Mapped[str] = mapped_column(String(64), default="", server_default="")
    host: Mapped[str] = mapped_column(String(255), default="127.0.0.1", server_default="127.0.0.1")
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    # Metering: seconds billed so far and the units they came to (rounded up per spec §7.1).
    metered_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    units: Mapped[int] = mapped_column(BigInteger, default=0)


class Blob(Base):
    """A file's content, addressed by sha256 (uploaded once, shared by the jobs that use it)."""

    __tablename__ = "blobs"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProjectBlob(Base):
    """Which project uploaded a blob: a job may only use content its own project uploaded."""

    __tablename__ = "project_blobs"
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    """One DataSphere-compatible job run (spec §5): its config, files, status and results."""

    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("job"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    desc: Mapped[str] = mapped_column(Text, default="")
    config_yaml: Mapped[str] = mapped_column(Text, default="")
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Files: {"inputs": [...], "modules": [...], "outputs": [...], "python": {...}}
    files: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(24), default=JobStatus.CREATING, index=True)
    status_details: Mapped[str] = mapped_column(Text, default="")
    progress: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_by: Mapped[str | None] = mapped_column(String(32), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    parent_job_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    workload_id: Mapped[str | None] = mapped_column(String(32), default=None)
    actual_cloud_instance_type: Mapped[str | None] = mapped_column(String(32), default=None)
    return_code: Mapped[int | None] = mapped_column(Integer, default=None)
    data_ttl_days: Mapped[int | None] = mapped_column(Integer, default=14)  # None: never expires
    data_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    data_cleared: Mapped[bool] = mapped_column(Boolean, default=False)
    data_size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)


class RunIdentity(Base):
    """The Unix uid a project's workloads run as (allocated once; an autoincrement never repeats)."""

    __tablename__ = "run_identities"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), unique=True)


class NotebookServer(Base):
    """One JupyterLab server of a project, from "open" to its release (spec §3.3, §4.1).

    ``live_project_id`` is the project's id while the server is not finished and NULL after: a
    unique column, so a project never has two live servers (on SQLite and PostgreSQL alike).
    The state follows the server's Workload: PREPARING (environment, dirs, port) → QUEUED (the
    scheduler decides) → STARTING (process runs, not answering yet) → READY → STOPPING →
    STOPPED or FAILED.
    """

    __tablename__ = "notebook_servers"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("nb"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    live_project_id: Mapped[str | None] = mapped_column(String(32), unique=True, default=None)
    state: Mapped[str] = mapped_column(String(16), default=NotebookState.PREPARING, index=True)
    configuration: Mapped[str] = mapped_column(String(32))  # asked for; the workload runs on it
    opened_by: Mapped[str] = mapped_column(String(32))
    workload_id: Mapped[str | None] = mapped_column(String(32), default=None)
    port: Mapped[int | None] = mapped_column(Integer, default=None)
    token: Mapped[bytes] = mapped_column(LargeBinary)  # Jupyter's token, sealed with the secret box
    detail: Mapped[str] = mapped_column(Text, default="")  # why it waits, or why it stopped
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    queued_at: Mapped[datetime | None] = mapped_column(default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    ready_at: Mapped[datetime | None] = mapped_column(default=None)
    stopping_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    # The last sign of real use (busy kernel, CPU, a user's request) and what it was.
    last_activity_at: Mapped[datetime | None] = mapped_column(default=None)
    last_activity: Mapped[str] = mapped_column(String(64), default="")


class NotebookRun(Base):
    """A notebook executed by API (spec §4.1, ``projects/{id}:execute``) as a Workload: inputs as
    env vars, the named variables' values collected at the end."""

    __tablename__ = "notebook_runs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("exe"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    notebook_id: Mapped[str] = mapped_column(String(200))  # path in the project's storage
    configuration: Mapped[str] = mapped_column(String(32))
    input_variables: Mapped[dict[str, Any]] = mapped_column(default=dict)
    output_variable_names: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(
        String(16), default=NotebookRunStatus.PENDING, index=True
    )  # → RUNNING → DONE | FAILED
    workload_id: Mapped[str | None] = mapped_column(String(32), default=None)
    output_variables: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


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
