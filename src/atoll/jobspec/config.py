"""DataSphere Jobs ``config.yaml``: the parser (spec §5.2); the typed model is in ``model``.

The parser follows DataSphere's CLI: YAML read with ``BaseLoader`` (every scalar is a string),
only ``cmd`` required, the same keys, defaults, limits and messages where they are worth
keeping. It is pure: nothing here reads files or the environment, so the server can re-parse
a stored config. The client-side checks (files exist, sizes) live in ``local_files``.

Every error is an ``Invalid`` whose ``field`` names the key (``inputs[2]``,
``env.python.version``, ``graceful-shutdown.signal``); things DataSphere accepts but that are
probably mistakes (unknown keys, deprecated spellings) become warnings instead.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

import yaml

from atoll.errors import Invalid
from atoll.jobspec.config_env import EnvParser, check_env_var_name, check_secret_name
from atoll.jobspec.model import (
    ATTACH_PROJECT_DISK,
    DEFAULT_INSTANCE_TYPES,
    SHUTDOWN_SIGNALS,
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
)
from atoll.jobspec.units import parse_duration, parse_size, size_to_gb
from atoll.jobspec.variables import check_cmd_references, check_unique_variables, check_var_name

MAX_LIST_ENTRIES = 100  # inputs, outputs, s3-mounts, datasets (spec §5.8)
MIN_WORKING_STORAGE_GB = 100
MAX_WORKING_STORAGE_GB = 10 * 1024  # 10 TB
KNOWN_FLAGS = frozenset({ATTACH_PROJECT_DISK})
RESOURCE_ID_RE = r"[0-9a-z]{20}"

TOP_KEYS = (
    "name", "desc", "cmd", "args", "inputs", "outputs", "s3-mounts", "datasets", "env", "flags",
    "cloud-instance-types", "cloud-instance-type", "working-storage", "graceful-shutdown",
    "output-datasets", "spark",
)  # fmt: skip


# ------------------------------------------------------------------------------------- parsing


def parse_config(text: str) -> tuple[JobConfig, list[str]]:
    """Parse ``config.yaml`` text the way DataSphere does. Returns the config and warnings."""
    try:
        data = yaml.load(text, Loader=yaml.BaseLoader)  # noqa: S506 -- BaseLoader builds no objects
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise Invalid(f"config is not valid YAML{where}: {problem}", field="config") from None
    return parse_config_data(data)


def parse_config_data(data: Any) -> tuple[JobConfig, list[str]]:
    """Validate an already-loaded config (YAML or JSON). Non-string scalars are read as strings."""
    parser = _Parser()
    return parser.parse(_stringify(data)), parser.warnings


def _stringify(value: Any) -> Any:
    """Make JSON-loaded data look like BaseLoader output: scalars as strings, nulls as absent."""
    if isinstance(value, dict):
        return {str(k): _stringify(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return ["" if v is None else _stringify(v) for v in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def _is_relative_inside(path: str) -> bool:
    """Relative, without ``..``, and not absolute on Windows either (configs travel between OSes)."""
    p = PurePosixPath(path.replace("\\", "/"))
    return not p.is_absolute() and not PureWindowsPath(path).is_absolute() and ".." not in p.parts


class _Parser(EnvParser):
    """One parse: collects warnings; every method raises ``Invalid`` naming the field."""

    # -- sections

    def parse(self, data: Any) -> JobConfig:
        if self._absent(data) or data == {}:
            raise Invalid("config is empty", field="config")
        if not isinstance(data, dict):
            raise Invalid("config must be a map of keys (name, cmd, inputs, ...)", field="config")
        self._unknown_keys(data, TOP_KEYS, None)
        if "cmd" not in data:
            raise Invalid("cmd is required", field="cmd")
        cmd = self._str(data["cmd"], "cmd", empty_ok=True).strip()
        if not cmd:
            raise Invalid("cmd is empty", field="cmd")
        flags = self._str_list(data.get("flags"), "flags")
        for i, flag in enumerate(flags):
            if flag not in KNOWN_FLAGS:
                self.warnings.append(
                    f"flags[{i}]: unknown flag {flag!r}, ignored (known: {ATTACH_PROJECT_DISK})"
                )
        args = self._args(data.get("args"))
        cfg = JobConfig(
            cmd=cmd,
            name=self._optional_str(data.get("name"), "name"),
            desc=self._optional_str(data.get("desc"), "desc"),
            args=args,
            inputs=self._paths(data.get("inputs"), "inputs"),
            outputs=self._paths(data.get("outputs"), "outputs"),
            s3_mounts=self._mounts(data.get("s3-mounts"), "s3-mounts"),
            datasets=self._mounts(data.get("datasets"), "datasets"),
            env=self._env(data.get("env")),
            flags=flags,
            cloud_instance_types=self._instance_types(data),
            working_storage=self._working_storage(data.get("working-storage")),
            graceful_shutdown=self._graceful_shutdown(data.get("graceful-shutdown")),
            output_datasets=self._output_datasets(data.get("output-datasets")),
            spark=self._spark(data.get("spark")),
        )
        check_unique_variables(cfg)
        check_cmd_references(cfg)
        return cfg

    def _args(self, value: Any) -> dict[str, str]:
        args = self._map(value, "args")
        for name, v in args.items():
            check_var_name(name, f"args.{name}")
            self._str(v, f"args.{name}", empty_ok=True)
        return dict(args)

    def _entry(self, value: Any, field: str) -> tuple[str, str | None]:
        """The three forms of a list entry: ``key``, ``{key: VAR}``, ``{key: {var: VAR}}``."""
        if isinstance(value, str):
            return self._str(value, field), None
        if isinstance(value, dict):
            if len(value) != 1:
                raise Invalid(
                    f"{field}: an entry maps one path to one variable (got {len(value)} keys)", field=field
                )
            key, spec = next(iter(value.items()))
            self._str(key, field)
            if isinstance(spec, dict):
                if list(spec) != ["var"]:
                    raise Invalid(
                        f"{field}: only the `var` parameter is supported (got {sorted(spec)})", field=field
                    )
                spec = spec["var"]
            if not isinstance(spec, str):
                raise Invalid(f"{field}: the variable must be a name", field=field)
            return key, check_var_name(spec, field)
        raise Invalid(f"{field} must be a path, {{path: VAR}} or {{path: {{var: VAR}}}}", field=field)

    def _paths(self, value: Any, key: str) -> tuple[VariablePath, ...]:
        items = self._list(value, key)
        if len(items) > MAX_LIST_ENTRIES:
            raise Invalid(f"{key}: at most {MAX_LIST_ENTRIES} entries (got {len(items)})", field=key)
        out = []
        for i, item in enumerate(items):
            path, var = self._entry(item, f"{key}[{i}]")
            if var is None and not _is_relative_inside(path):
                raise Invalid(
                    f"{key}[{i}]: path without a variable must be relative and without '..': {path}",
                    field=f"{key}[{i}]",
                )
            out.append(VariablePath(path=path, var=var))
        return tuple(out)

    def _mounts(self, value: Any, key: str) -> tuple[ResourceMount, ...]:
        items = self._list(value, key)
        if len(items) > MAX_LIST_ENTRIES:
            raise Invalid(f"{key}: at most {MAX_LIST_ENTRIES} entries (got {len(items)})", field=key)
        out = []
        for i, item in enumerate(items):
            rid, var = self._entry(item, f"{key}[{i}]")
            if not re.fullmatch(RESOURCE_ID_RE, rid):
                raise Invalid(
                    f"{key}[{i}]: invalid resource ID {rid!r} (20 lowercase letters and digits)",
                    field=f"{key}[{i}]",
                )
            out.append(ResourceMount(id=rid, var=var))
        return tuple(out)

    def _instance_types(self, data: dict[str, Any]) -> tuple[str, ...]:
        key = "cloud-instance-types"
        value = data.get(key)
        if self._absent(value) and not self._absent(data.get("cloud-instance-type")):
            key, value = "cloud-instance-type", data["cloud-instance-type"]
            self.warnings.append("cloud-instance-type: legacy key; write cloud-instance-types")
        if self._absent(value) or value == []:
            return DEFAULT_INSTANCE_TYPES
        if isinstance(value, str):
            return (value.strip(),)
        return tuple(v.strip() for v in self._str_list(value, key))

    def _working_storage(self, value: Any) -> WorkingStorage | None:
        if self._absent(value):
            return None
        f = "working-storage"
        ws = self._map(value, f)
        self._unknown_keys(ws, ("type", "size"), f)
        typ = ws.get("type", "SSD")
        if typ != "SSD":
            raise Invalid(f"{f}.type must be SSD (got {typ!r})", field=f"{f}.type")
        if self._absent(ws.get("size")):
            raise Invalid(f"{f}.size is required, e.g. 150Gb", field=f"{f}.size")
        size_gb = size_to_gb(parse_size(ws["size"], f"{f}.size"))
        if not MIN_WORKING_STORAGE_GB <= size_gb <= MAX_WORKING_STORAGE_GB:
            raise Invalid(f"{f}.size must be between 100Gb and 10Tb (got {ws['size']})", field=f"{f}.size")
        return WorkingStorage(size_gb=size_gb, type="SSD")

    def _graceful_shutdown(self, value: Any) -> GracefulShutdown | None:
        if value is None:
            return None
        f = "graceful-shutdown"
        gs = self._map(value, f)
        self._unknown_keys(gs, ("signal", "timeout"), f)
        signal = gs.get("signal") or "SIGTERM"
        if signal not in SHUTDOWN_SIGNALS:
            raise Invalid(
                f"{f}.signal must be one of {', '.join(SHUTDOWN_SIGNALS)} (got {signal!r})",
                field=f"{f}.signal",
            )
        timeout = None if self._absent(gs.get("timeout")) else parse_duration(gs["timeout"], f"{f}.timeout")
        return GracefulShutdown(signal=signal, timeout_seconds=timeout)

    def _output_datasets(self, value: Any) -> tuple[OutputDataset, ...]:
        out: list[OutputDataset] = []
        names: set[str] = set()
        for i, item in enumerate(self._list(value, "output-datasets")):
            f = f"output-datasets[{i}]"
            if not isinstance(item, dict) or not item:
                raise Invalid(f"{f} must be a map {{name, var, size, description?, labels?}}", field=f)
            ds: dict[str, Any] = item
            self._unknown_keys(ds, ("name", "var", "size", "description", "labels"), f)
            for key in ("name", "var", "size"):
                if self._absent(ds.get(key)):
                    raise Invalid(f"{f}.{key} is required", field=f"{f}.{key}")
            name = self._str(ds["name"], f"{f}.name")
            if name in names:
                raise Invalid(f"{f}.name: output dataset name {name!r} is used twice", field=f"{f}.name")
            names.add(name)
            size_gb = size_to_gb(parse_size(ds["size"], f"{f}.size"))
            if size_gb < 1:
                raise Invalid(f"{f}.size must be at least 1Gb", field=f"{f}.size")
            out.append(
                OutputDataset(
                    name=name,
                    var=check_var_name(ds["var"], f"{f}.var"),
                    size_gb=size_gb,
                    description=self._str(ds.get("description", ""), f"{f}.description", empty_ok=True),
                    labels=self._str_map(ds.get("labels"), f"{f}.labels"),
                )
            )
        return tuple(out)

    def _spark(self, value: Any) -> Spark | None:
        if self._absent(value):
            return None
        sp = self._map(value, "spark")
        self._unknown_keys(sp, ("connector",), "spark")
        connector = sp.get("connector")
        if isinstance(connector, dict):
            connector = connector.get("id")
        if self._absent(connector) or not isinstance(connector, str):
            raise Invalid("spark.connector is required: {connector: <id>}", field="spark.connector")
        return Spark(connector_id=connector.strip())


# ------------------------------------------------------------------------- cross-field rules


def parse_working_storage(value: Any) -> WorkingStorage:
    """``working-storage`` from its config form ``{type: SSD, size: 150Gb}`` (also used by fork)."""
    ws = _Parser()._working_storage(value if value not in (None, "") else {})
    assert ws is not None
    return ws


__all__ = [
    "DockerImage",
    "EnvVar",
    "GracefulShutdown",
    "JobConfig",
    "JobEnv",
    "OutputDataset",
    "PipOptions",
    "PythonEnv",
    "ResourceMount",
    "Spark",
    "VariablePath",
    "WorkingStorage",
    "check_cmd_references",
    "check_env_var_name",
    "check_secret_name",
    "check_unique_variables",
    "parse_config",
    "parse_config_data",
    "parse_working_storage",
]
