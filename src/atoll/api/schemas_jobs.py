"""Jobs, their files, logs and datasets: bodies."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from atoll.api.bounds import (
    MAX_CONFIG_CHARS,
    MAX_ITEMS,
    MAX_MODULES,
    MAX_REQUIREMENTS,
    Days,
    EnvVars,
    FileSize,
    JobName,
    Short,
    Text,
)
from atoll.api.schemas import ApiModel, Input, Timestamp

# --- jobs -----------------------------------------------------------------------------------


class FileRefIn(Input):
    path: Text
    sha256: str = Field(max_length=64)
    size: FileSize
    var: str | None = Field(default=None, max_length=50)
    is_dir: bool = False
    executable: bool = Field(default=False, description="Restore the executable bit (e.g. ./run.sh)")


class PipOptionsIn(Input):
    index_url: Text | None = None
    extra_index_urls: list[Text] = Field(default_factory=list, max_length=MAX_ITEMS)
    trusted_hosts: list[Text] = Field(default_factory=list, max_length=MAX_ITEMS)
    no_deps: bool = False


class PythonEnvIn(Input):
    version: Short
    requirements: list[Text] = Field(default_factory=list, max_length=MAX_REQUIREMENTS)
    pip: PipOptionsIn | None = Field(default=None, description="pip options from a requirements file")


VarName = Annotated[str, Field(max_length=50)]


class JobCreate(Input):
    config: str = Field(
        max_length=MAX_CONFIG_CHARS, description="The config.yaml text, as written (at most 64 KiB)"
    )
    name: JobName | None = None
    desc: Text | None = None
    inputs: list[FileRefIn] = Field(default_factory=list, max_length=MAX_ITEMS)
    modules: list[FileRefIn] = Field(
        default_factory=list, max_length=MAX_MODULES, description="Local Python modules (env.python)"
    )
    python: PythonEnvIn | None = None
    env_vars: EnvVars = Field(default_factory=dict, description="Values of env.vars copied from your env")
    data_ttl_days: Days | None = 14


class JobFork(Input):
    args: dict[VarName, Text] | None = Field(default=None, max_length=MAX_ITEMS)
    vars: dict[VarName, FileRefIn] | None = Field(
        default=None, max_length=MAX_ITEMS, description="New files for input variables"
    )
    output_vars: dict[VarName, Text] | None = Field(
        default=None, max_length=MAX_ITEMS, description="New paths for output variables"
    )
    env_vars: EnvVars | None = None
    name: JobName | None = None
    desc: Text | None = None
    cloud_instance_types: list[Short] | None = Field(default=None, max_length=MAX_ITEMS)


class JobCancel(Input):
    graceful: bool = False


class DataTtl(Input):
    days: Days | None = Field(description="Days to keep the job's data after it ends; null keeps it forever")


class OutputFile(ApiModel):
    path: str
    var: str | None = None
    sha256: str
    size: int
    is_dir: bool = False


class OutputDatasetOut(ApiModel):
    name: str
    id: str | None = Field(default=None, description="The dataset made; null when it was not made")
    size_bytes: int | None = None
    desc: str = ""
    error: str | None = Field(default=None, description="Why it was not made")


class DatasetOut(ApiModel):
    id: str
    project_id: str
    name: str
    description: str
    labels: dict[str, str]
    size_gb: int = Field(description="The size its config declared: the most it may hold")
    size_bytes: int = Field(description="What its files hold")
    job_id: str | None = Field(description="The job whose output-datasets made it")
    created_by_id: str | None = Field(default=None, validation_alias="created_by")
    created_at: Timestamp


class JobOut(ApiModel):
    id: str
    project_id: str
    name: str
    desc: str
    status: str
    status_details: str
    progress: dict[str, Any]
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    created_by_id: str | None = Field(default=None, validation_alias="created_by")
    parent_job_id: str | None
    actual_cloud_instance_type: str | None
    return_code: int | None
    data_ttl_days: int | None
    data_expires_at: Timestamp | None
    data_cleared: bool
    data_size_bytes: int
    config: str = Field(validation_alias="config_yaml")
    output_files: list[OutputFile] = Field(default_factory=list)
    file_errors: list[dict[str, str]] = Field(default_factory=list)
    output_datasets: list[OutputDatasetOut] = Field(
        default_factory=list, description="What each of the config's output-datasets became"
    )


class JobCreated(ApiModel):
    job: JobOut
    missing_files: list[str] = Field(description="sha256 of the files to upload before executing")


class LogChunkOut(ApiModel):
    stream: str
    data: str
    offset: int
    eof: bool
    status: str


class LogTextOut(ApiModel):
    """New output of one stream: ``data`` ends at byte ``offset`` (the next read starts there)."""

    stream: str
    data: str
    offset: int


class JobFollowOut(ApiModel):
    """What changed in a followed job: its new output, the job as it is now, and ``state``, to be
    sent back so the next call waits only while nothing changes."""

    job: JobOut
    chunks: list[LogTextOut]
    state: str
    eof: bool  # the job has ended and every stream was read to its end
