"""config.yaml's ``env`` section (spec §5.2): variables, a Docker image, the Python
environment and its pip options; and the rules for the names a job's variables and secrets take."""

from __future__ import annotations

import re
from typing import Any

from atoll.errors import Invalid
from atoll.jobspec.config_reader import Reader
from atoll.jobspec.env_names import reserved_env_message, reserved_env_name
from atoll.jobspec.model import (
    DockerImage,
    EnvVar,
    JobEnv,
    PipOptions,
    PythonEnv,
)

SYSTEM_DOCKER_IMAGE = "system-python-3-10"
PYTHON_VERSION_RE = r"3\.\d+(\.\d+)?"
# Secret names (spec §4.5): Latin letters, digits and hyphens, starting with a letter, not ending
# with a hyphen or underscore.
SECRET_NAME_RE = r"[A-Za-z][A-Za-z0-9_-]{0,61}[A-Za-z0-9]"  # noqa: S105 -- a name pattern, not a password
ENV_KEYS = ("vars", "docker", "python")
PYTHON_KEYS = ("type", "version", "requirements-file", "root-paths", "local-paths", "pip")
PIP_KEYS = ("index-url", "extra-index-urls", "trusted-hosts", "no-deps")
DOCKER_KEYS = ("image", "username", "password")


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


class EnvParser(Reader):
    """Parses the ``env`` section."""

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
