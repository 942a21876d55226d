"""DataSphere Jobs: the ``config.yaml`` schema and the rules around it (spec §5)."""

from atoll.jobspec.capabilities import ALL_CAPABILITIES, unsupported_keys
from atoll.jobspec.config import (
    DockerImage,
    EnvVar,
    GracefulShutdown,
    JobConfig,
    JobEnv,
    OutputDataset,
    PipOptions,
    PythonEnv,
    ResourceMount,
    Spark,
    VariablePath,
    WorkingStorage,
    parse_config,
    parse_config_data,
)
from atoll.jobspec.fork import apply_fork
from atoll.jobspec.local_files import LocalFile, check_local_files, resolve_env_vars
from atoll.jobspec.variables import render_cmd, substitute

__all__ = [
    "ALL_CAPABILITIES",
    "DockerImage",
    "EnvVar",
    "GracefulShutdown",
    "JobConfig",
    "JobEnv",
    "LocalFile",
    "OutputDataset",
    "PipOptions",
    "PythonEnv",
    "ResourceMount",
    "Spark",
    "VariablePath",
    "WorkingStorage",
    "apply_fork",
    "check_local_files",
    "parse_config",
    "parse_config_data",
    "render_cmd",
    "resolve_env_vars",
    "substitute",
    "unsupported_keys",
]
