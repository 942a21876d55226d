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

import difflib
import re
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

import yaml

from atoll.errors import Invalid
from atoll.jobspec.env_names import reserved_env_message, reserved_env_name
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
SYSTEM_DOCKER_IMAGE = "system-python-3-10"
PYTHON_VERSION_RE = r"3\.\d+(\.\d+)?"
RESOURCE_ID_RE = r"[0-9a-z]{20}"
# Secret names (spec §4.5): Latin letters, digits and hyphens, starting with a letter, not ending
# with a hyphen or underscore.
SECRET_NAME_RE = r"[A-Za-z][A-Za-z0-9_-]{0,61}[A-Za-z0-9]"  # noqa: S105 -- a name pattern, not a password

TOP_KEYS = (
    "name", "desc", "cmd", "args", "inputs", "outputs", "s3-mounts", "datasets", "env", "flags",
    "cloud-instance-types", "cloud-instance-type", "working-storage", "graceful-shutdown",
    "output-datasets", "spark",
)  # fmt: skip
ENV_KEYS = ("vars", "docker", "python")
PYTHON_KEYS = ("type", "version", "requirements-file", "root-paths", "local-paths", "pip")
PIP_KEYS = ("index-url", "extra-index-urls", "trusted-hosts", "no-deps")
DOCKER_KEYS = ("image", "username", "password")
# Spellings the DataSphere docs use in prose but the parser does not read.
_KNOWN_MISSPELLINGS = {"description": "desc", "root-path": "root-paths", "local-path": "local-paths"}


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


class _Parser:
    """One parse: collects warnings; every method raises ``Invalid`` naming the field."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    # -- primitives

    @staticmethod
    def _absent(value: Any) -> bool:
        # `inputs:` with nothing after it is '' under BaseLoader: the same as leaving the key out.
        return value is None or value == ""

    def _str(self, value: Any, field: str, *, empty_ok: bool = False) -> str:
        if not isinstance(value, str):
            raise Invalid(f"{field} must be a string", field=field)
        if not empty_ok and not value.strip():
            raise Invalid(f"{field} must not be empty", field=field)
        return value

    def _list(self, value: Any, field: str) -> list[Any]:
        if self._absent(value):
            return []
        if not isinstance(value, list):
            raise Invalid(f"{field} must be a list", field=field)
        return value

    def _map(self, value: Any, field: str) -> dict[str, Any]:
        if self._absent(value):
            return {}
        if not isinstance(value, dict):
            raise Invalid(f"{field} must be a map", field=field)
        return value

    def _str_list(self, value: Any, field: str) -> tuple[str, ...]:
        return tuple(self._str(v, f"{field}[{i}]") for i, v in enumerate(self._list(value, field)))

    def _str_map(self, value: Any, field: str) -> dict[str, str]:
        return {k: self._str(v, f"{field}.{k}", empty_ok=True) for k, v in self._map(value, field).items()}

    def _unknown_keys(self, data: dict[str, Any], known: tuple[str, ...], where: str | None) -> None:
        for key in data:
            if key in known:
                continue
            name = f"{where}.{key}" if where else key
            hint = _KNOWN_MISSPELLINGS.get(key) or next(iter(difflib.get_close_matches(key, known, 1)), None)
            suffix = f"; did you mean {hint}?" if hint else ""
            self.warnings.append(f"{name}: unknown key, ignored{suffix}")

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

    def _optional_str(self, value: Any, field: str) -> str | None:
        if self._absent(value):
            return None
        return self._str(value, field)

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

    def _env(self, value: Any) -> JobEnv:
        env = self._map(value, "env")
        self._unknown_keys(env, ENV_KEYS, "env")
        return JobEnv(
            vars=self._env_vars(env.get("vars")),
            docker=self._docker(env.get("docker")),
            python=None if self._absent(env.get("python")) else self._python(env["python"]),
        )

    def _env_vars(self, value: Any) -> tuple[EnvVar, ...]:
        if self._absent(value):
            return ()
        out: list[EnvVar] = []
        if isinstance(value, dict):
            self.warnings.append("env.vars: a map is deprecated; write a list of `- NAME` or `- NAME: value`")
            entries: list[tuple[str, str, Any]] = [(f"env.vars.{k}", k, v) for k, v in value.items()]
            for where, name, v in entries:
                out.append(EnvVar(check_env_var_name(name, where), self._str(v, where, empty_ok=True)))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                where = f"env.vars[{i}]"
                if isinstance(item, str):
                    out.append(EnvVar(check_env_var_name(item, where)))
                elif isinstance(item, dict) and len(item) == 1:
                    name, v = next(iter(item.items()))
                    out.append(EnvVar(check_env_var_name(name, where), self._str(v, where, empty_ok=True)))
                else:
                    raise Invalid(f"{where}: write `- NAME` or `- NAME: value`", field=where)
        else:
            raise Invalid("env.vars must be a list of `- NAME` or `- NAME: value`", field="env.vars")
        seen: set[str] = set()
        for i, var in enumerate(out):
            if var.name in seen:
                raise Invalid(f"env.vars[{i}]: {var.name} is set twice", field=f"env.vars[{i}]")
            seen.add(var.name)
        return tuple(out)

    def _docker(self, value: Any) -> str | DockerImage | None:
        if self._absent(value):
            return None
        if isinstance(value, str):
            return value.strip()
        if not isinstance(value, dict):
            raise Invalid(
                "env.docker must be an image ID, system-python-3-10 or {image, ...}", field="env.docker"
            )
        self._unknown_keys(value, DOCKER_KEYS, "env.docker")
        if self._absent(value.get("image")):
            raise Invalid("env.docker.image is required", field="env.docker.image")
        image = self._str(value["image"], "env.docker.image").strip()
        username = self._optional_str(value.get("username"), "env.docker.username")
        secret = None
        password = value.get("password")
        if isinstance(password, str) and password:
            raise Invalid(
                "Plain text password is prohibited. Use DataSphere secrets instead of plain passwords: "
                "password: {secret-id: <secret name>}",
                field="env.docker.password",
            )
        if not self._absent(password):
            if not isinstance(password, dict) or list(password) != ["secret-id"]:
                raise Invalid(
                    "env.docker.password must be {secret-id: <secret name>}", field="env.docker.password"
                )
            secret = check_secret_name(password["secret-id"], "env.docker.password.secret-id")
        return DockerImage(image=image, username=username, password_secret=secret)

    def _python(self, value: Any) -> PythonEnv:
        f = "env.python"
        if isinstance(value, str):
            if value.strip().lower() != "auto":
                raise Invalid(f"{f} must be `auto` or a map with type: auto|manual (got {value!r})", field=f)
            return PythonEnv(type="auto")
        if not isinstance(value, dict):
            raise Invalid(f"{f} must be `auto` or a map with type: auto|manual", field=f)
        self._unknown_keys(value, PYTHON_KEYS, f)
        if self._absent(value.get("type")):
            raise Invalid(f"{f}.type is required: auto or manual", field=f"{f}.type")
        typ = value["type"]
        if typ not in ("auto", "manual"):
            raise Invalid(f"{f}.type must be auto or manual (got {typ!r})", field=f"{f}.type")
        root_paths = (
            None if "root-paths" not in value else self._str_list(value["root-paths"], f"{f}.root-paths")
        )
        pip = None if "pip" not in value else self._pip(value["pip"])
        if typ == "auto":
            for key in ("version", "requirements-file", "local-paths"):
                if key in value:
                    self.warnings.append(f"{f}.{key}: ignored with type: auto (use type: manual to set it)")
            return PythonEnv(type="auto", root_paths=root_paths, pip=pip)

        if not any(k in value for k in ("version", "requirements-file", "local-paths", "root-paths", "pip")):
            raise Invalid(
                f"{f}: type manual needs at least one of version, requirements-file, local-paths", field=f
            )
        version = None
        if not self._absent(value.get("version")):
            version = self._str(value["version"], f"{f}.version").strip()
            if not re.fullmatch(PYTHON_VERSION_RE, version):
                raise Invalid(
                    f"{f}.version: unsupported Python version {version!r} (write 3.X or 3.X.Y)",
                    field=f"{f}.version",
                )
            major_minor = ".".join(version.split(".")[:2])
            if major_minor != version:
                self.warnings.append(
                    f"{f}.version: Python version is reduced to major.minor ({version} -> {major_minor})"
                )
                version = major_minor
        requirements = self._optional_str(value.get("requirements-file"), f"{f}.requirements-file")
        local_paths = (
            None if "local-paths" not in value else self._str_list(value["local-paths"], f"{f}.local-paths")
        )
        if root_paths and local_paths:
            raise Invalid(f"{f}: root-paths and local-paths are mutually exclusive", field=f"{f}.local-paths")
        return PythonEnv(
            type="manual",
            version=version,
            requirements_file=requirements,
            root_paths=root_paths,
            local_paths=local_paths,
            pip=pip,
        )

    def _pip(self, value: Any) -> PipOptions:
        f = "env.python.pip"
        pip = self._map(value, f)
        self._unknown_keys(pip, PIP_KEYS, f)
        no_deps_raw = pip.get("no-deps")
        if no_deps_raw is not None and no_deps_raw not in ("true", "false"):
            # DataSphere turns it on only for the exact string 'true'; say so instead of surprising.
            self.warnings.append(f"{f}.no-deps: only 'true' turns it on; {no_deps_raw!r} is read as false")
        return PipOptions(
            index_url=self._optional_str(pip.get("index-url"), f"{f}.index-url"),
            extra_index_urls=self._str_list(pip.get("extra-index-urls"), f"{f}.extra-index-urls"),
            trusted_hosts=self._str_list(pip.get("trusted-hosts"), f"{f}.trusted-hosts"),
            no_deps=no_deps_raw == "true",
        )

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


def check_env_var_name(name: Any, field: str) -> str:
    """A name for one of a job's env.vars, or ``Invalid`` naming ``field``."""
    # Anything exec() accepts as a name: non-empty, no '=' and no NUL; and none Atoll sets itself.
    if not isinstance(name, str) or not name or "=" in name or "\0" in name:
        raise Invalid(f"{field}: invalid environment variable name {name!r}", field=field)
    if reserved_env_name(name):
        raise Invalid(f"{field}: {reserved_env_message(name)}", field=field)
    return name


def check_secret_name(name: Any, field: str) -> str:
    """A project secret's name (spec §4.5), or ``Invalid`` naming ``field``."""
    if not isinstance(name, str) or not re.fullmatch(SECRET_NAME_RE, name):
        raise Invalid(
            f"{field}: secret name {name!r} must be 2-63 Latin letters, digits and hyphens, "
            "start with a letter and not end with a hyphen or underscore",
            field=field,
        )
    return name


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
