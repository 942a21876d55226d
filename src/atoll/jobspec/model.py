"""DataSphere Jobs ``config.yaml`` as typed, frozen dataclasses, stored as JSON (spec §5.2).

``config.parse_config`` builds a ``JobConfig``; ``to_dict``/``from_dict`` store it and read it back.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from atoll.errors import Invalid

DEFAULT_INSTANCE_TYPES = ("c1.4",)
ATTACH_PROJECT_DISK = "attach-project-disk"
SHUTDOWN_SIGNALS = {"SIGHUP": 1, "SIGINT": 2, "SIGUSR1": 10, "SIGUSR2": 12, "SIGTERM": 15}


@dataclass(frozen=True)
class VariablePath:
    """An input or output file (or input directory), optionally named by a variable."""

    path: str
    var: str | None = None


@dataclass(frozen=True)
class ResourceMount:
    """A mounted S3 connector or dataset: its ID, optionally named by a variable."""

    id: str
    var: str | None = None

    @property
    def name(self) -> str:
        """The variable name ``cmd`` refers to it by: the var, else the ID itself."""
        return self.var or self.id


@dataclass(frozen=True)
class EnvVar:
    """An environment variable; ``value`` None means "copy it from the submitter's environment"."""

    name: str
    value: str | None = None


@dataclass(frozen=True)
class DockerImage:
    """An image from a registry; the password is only ever a project secret's name."""

    image: str
    username: str | None = None
    password_secret: str | None = None


@dataclass(frozen=True)
class PipOptions:
    """Options for pip (uv here) when the environment is built."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    trusted_hosts: tuple[str, ...] = ()
    no_deps: bool = False


@dataclass(frozen=True)
class PythonEnv:
    """``env.python``. ``None`` for a list means "not given, detect it"; ``()`` means "none"."""

    type: str = "auto"  # auto | manual
    version: str | None = None  # major.minor
    requirements_file: str | None = None
    root_paths: tuple[str, ...] | None = None
    local_paths: tuple[str, ...] | None = None
    pip: PipOptions | None = None

    @property
    def fully_manual(self) -> bool:
        """Version, requirements and local modules all given: no local inspection at all."""
        return self.type == "manual" and None not in (self.version, self.requirements_file, self.local_paths)


@dataclass(frozen=True)
class JobEnv:
    """``env``: variables, Docker image (resource ID, ``system-python-3-10`` or registry image), Python."""

    vars: tuple[EnvVar, ...] = ()
    docker: str | DockerImage | None = None
    python: PythonEnv | None = None

    @property
    def image(self) -> str | None:
        """The image ``docker`` names (with or without registry credentials); None: no container."""
        return self.docker.image if isinstance(self.docker, DockerImage) else self.docker


@dataclass(frozen=True)
class WorkingStorage:
    """Extended working storage; DataSphere only has SSD."""

    size_gb: int
    type: str = "SSD"


@dataclass(frozen=True)
class GracefulShutdown:
    """Signal sent on a graceful cancel, and how long to wait before SIGKILL (None: no limit given)."""

    signal: str = "SIGTERM"
    timeout_seconds: float | None = None

    @property
    def signal_number(self) -> int:
        """The Linux signal number, as DataSphere sends it."""
        return SHUTDOWN_SIGNALS[self.signal]


@dataclass(frozen=True)
class OutputDataset:
    """A dataset created from the directory at ``${var}`` after the job succeeds."""

    name: str
    var: str
    size_gb: int
    description: str = ""
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Spark:
    """Data Proc through a Spark connector."""

    connector_id: str


@dataclass(frozen=True)
class JobConfig:
    """A parsed, validated ``config.yaml``. Build it with ``parse_config``; store it with ``to_dict``."""

    cmd: str
    name: str | None = None
    desc: str | None = None
    args: dict[str, str] = field(default_factory=dict)
    inputs: tuple[VariablePath, ...] = ()
    outputs: tuple[VariablePath, ...] = ()
    s3_mounts: tuple[ResourceMount, ...] = ()
    datasets: tuple[ResourceMount, ...] = ()
    env: JobEnv = field(default_factory=JobEnv)
    flags: tuple[str, ...] = ()
    cloud_instance_types: tuple[str, ...] = DEFAULT_INSTANCE_TYPES
    working_storage: WorkingStorage | None = None
    graceful_shutdown: GracefulShutdown | None = None
    output_datasets: tuple[OutputDataset, ...] = ()
    spark: Spark | None = None

    @property
    def attach_project_disk(self) -> bool:
        """Whether the project storage is mounted (path in ``DS_PROJECT_HOME``)."""
        return ATTACH_PROJECT_DISK in self.flags

    @property
    def variables(self) -> list[str]:
        """Every variable name: inputs, outputs, s3, datasets, args, output datasets (DataSphere's order)."""
        return (
            [p.var for p in self.inputs if p.var]
            + [p.var for p in self.outputs if p.var]
            + [m.name for m in self.s3_mounts]
            + [m.name for m in self.datasets]
            + list(self.args)
            + [d.var for d in self.output_datasets]
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (field names in snake_case); ``from_dict`` reads it back."""
        return typing.cast(dict[str, Any], _encode(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobConfig:
        """The config stored by ``to_dict``. Checks structure and types, not the config rules."""
        return typing.cast(JobConfig, _decode(cls, data, "config"))


# ------------------------------------------------------------------------------- serialization


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    return value


def _decode(tp: Any, value: Any, where: str) -> Any:
    """Rebuild ``value`` as type ``tp`` (the annotations above: dataclasses, tuples, dicts, unions)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        # A union here is at most one dataclass and one scalar type (docker: str | DockerImage).
        for option in options:
            if dataclasses.is_dataclass(option) and isinstance(value, dict):
                return _decode(option, value, where)
        for option in options:
            if option is not type(None) and not dataclasses.is_dataclass(option):
                return _decode(option, value, where)
        raise Invalid(f"{where}: unexpected value {value!r}", field=where)
    if origin is tuple:
        elem = typing.get_args(tp)[0]
        if not isinstance(value, list | tuple):
            raise Invalid(f"{where} must be a list", field=where)
        return tuple(_decode(elem, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        _, vt = typing.get_args(tp)
        if not isinstance(value, dict):
            raise Invalid(f"{where} must be an object", field=where)
        return {str(k): _decode(vt, v, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            raise Invalid(f"{where} must be an object", field=where)
        hints = typing.get_type_hints(tp)
        names = {f.name for f in dataclasses.fields(tp)}
        unknown = sorted(set(value) - names)
        if unknown:
            raise Invalid(f"{where}: unknown field {unknown[0]!r}", field=f"{where}.{unknown[0]}")
        kwargs = {k: _decode(hints[k], v, f"{where}.{k}") for k, v in value.items()}
        try:
            return tp(**kwargs)
        except TypeError as e:  # a required field is missing
            raise Invalid(f"{where}: {e}", field=where) from None
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(tp, type) and not isinstance(value, tp):
        raise Invalid(f"{where} must be {tp.__name__}", field=where)
    return value
