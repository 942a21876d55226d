"""What runs: workloads, blobs, jobs, run identities, notebook servers and runs."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from atoll.states import (
    Desired,
    JobStatus,
    NotebookRunStatus,
    NotebookState,
    WorkloadPhase,
)
from atoll.store.json_types import TypedJSON
from atoll.store.tables.base import Base, new_id, utcnow


class MountSpec(BaseModel):
    """A source dir made visible at ``target`` (relative to the workdir); each runtime realizes it
    (a link for the local runtime, a bind mount for a container)."""

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)

    source: str
    target: str
    read_only: bool = False

    @field_validator("source", mode="before")
    @classmethod
    def _path(cls, value: Any) -> Any:
        return str(value) if isinstance(value, Path) else value


class PythonEnvSpec(BaseModel):
    """A built Python environment the command uses (see runtime.base.PythonEnv)."""

    model_config = ConfigDict(frozen=True)

    prefix: str
    venv: bool = True


class WorkloadSpec(BaseModel):
    """What a workload runs, as its row keeps it (camelCase in the database, as it always was)."""

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)

    command: list[str] = Field(default_factory=list)
    workdir: str = ""
    env: dict[str, str] = Field(default_factory=dict)
    mounts: list[MountSpec] = Field(default_factory=list)
    # Env vars naming the server machine's own files: left out where the workload cannot see them.
    host_env: dict[str, str] = Field(default_factory=dict)
    python: PythonEnvSpec | None = None
    cwd: str = ""  # where the command starts, relative to workdir
    ports: list[int] = Field(default_factory=list)
    with_secrets: bool = True  # the project's secrets become env vars
    # Env vars sealed with the installation's secret box (e.g. a notebook server's token): the
    # database never holds them in clear, and the runtime redacts them from logs like secrets.
    sealed_env: dict[str, str] = Field(default_factory=dict)
    warm: str | None = None  # a runtime warm pool that may start it (see runtime.base.Workload)
    image: str | None = None  # run in a container of this image (the Docker runtime)
    container_ports: list[int] = Field(default_factory=list)  # inside the container, per port
    storage_gb: int = 0  # extended working storage the scheduler reserves on its machine

    @field_validator("workdir", mode="before")
    @classmethod
    def _path(cls, value: Any) -> Any:
        return str(value) if isinstance(value, Path) else value

    @field_validator("mounts", mode="before")
    @classmethod
    def _legacy_mounts(cls, value: Any) -> Any:
        # Rows written before mounts were typed hold [source, target] or [source, target, "ro"].
        if isinstance(value, list):
            legacy = (list, tuple)
            return [
                {"source": m[0], "target": m[1], "readOnly": "ro" in m[2:]} if isinstance(m, legacy) else m
                for m in value
            ]
        return value


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
    spec: Mapped[WorkloadSpec] = mapped_column(
        TypedJSON(WorkloadSpec), default=lambda: WorkloadSpec()
    )  # no secrets
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


class _Camel(BaseModel):
    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)


class StoredFile(_Camel):
    """A file of a job, by content: an input or local module the client sent, or an output."""

    path: str
    sha256: str
    size: int
    var: str | None = None
    is_dir: bool = False  # a directory, kept as a zip archive
    executable: bool = False  # must be executable where it lands (./run.sh)


class FileError(_Camel):
    """An output the job did not leave as a plain file or directory (NOT_FOUND, TOO_LARGE, ...)."""

    path: str
    error: str


class OutputDataset(_Camel):
    """An output dataset of a finished job: the one made, or why none was."""

    name: str
    id: str | None = None
    size_bytes: int | None = None
    desc: str = ""
    error: str | None = None


class JobPip(BaseModel):
    """pip options from the job's requirements file (jobspec's PipOptions, as stored)."""

    model_config = ConfigDict(frozen=True)

    index_url: str | None = None
    extra_index_urls: list[str] = Field(default_factory=list)
    trusted_hosts: list[str] = Field(default_factory=list)
    no_deps: bool = False


class JobPython(BaseModel):
    """The Python environment the client detected: version, pinned requirements, pip options."""

    model_config = ConfigDict(frozen=True)

    version: str
    requirements: list[str] = Field(default_factory=list)
    pip: JobPip | None = None


class JobFiles(_Camel):
    """What a job's ``files`` column holds: what it was sent, and what it left."""

    inputs: list[StoredFile] = Field(default_factory=list)
    modules: list[StoredFile] = Field(default_factory=list)
    python: JobPython | None = None
    env_vars: dict[str, str] = Field(default_factory=dict)
    system_log: str | None = None  # the workload whose logs outlive it, once it is gone
    outputs: list[StoredFile] = Field(default_factory=list)
    file_errors: list[FileError] = Field(default_factory=list)
    output_datasets: list[OutputDataset] = Field(default_factory=list)

    def with_(self, **changes: Any) -> JobFiles:
        """A copy with ``changes`` (field names), validated like a new value."""
        return JobFiles.model_validate({**self.model_dump(), **changes})


class Job(Base):
    """One DataSphere-compatible job run (spec §5): its config, files, status and results."""

    __tablename__ = "jobs"
    # A project's jobs page by page (keyset on created_at, id), and the expiry sweep every tick:
    # both stay index lookups with 100,000 jobs in the store (bench/control_plane.py).
    __table_args__ = (
        Index("ix_jobs_project_created", "project_id", "created_at", "id"),
        Index("ix_jobs_data_expires_at", "data_expires_at"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("job"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    desc: Mapped[str] = mapped_column(Text, default="")
    config_yaml: Mapped[str] = mapped_column(Text, default="")
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    files: Mapped[JobFiles] = mapped_column(TypedJSON(JobFiles), default=lambda: JobFiles())
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
