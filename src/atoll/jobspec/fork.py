"""Fork: a new job from a source job's config with a few overrides (spec §5.7).

What can change: name, desc, values of existing args, paths of input/output variables, the
whole set of env vars, the Docker image (changed, never removed), working storage and cloud
instance types. What cannot: cmd, the Python environment, S3 mounts, datasets, the project disk.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from atoll.errors import Invalid
from atoll.jobspec.config import (
    MAX_WORKING_STORAGE_GB,
    MIN_WORKING_STORAGE_GB,
    DockerImage,
    EnvVar,
    JobConfig,
    VariablePath,
    WorkingStorage,
    check_cmd_references,
    check_env_var_name,
    check_unique_variables,
    parse_config_data,
    parse_working_storage,
)

# Keyword -> config key, for the things a fork may not touch.
FIXED_ON_FORK = {
    "cmd": "cmd",
    "python": "env.python",
    "python_env": "env.python",
    "s3_mounts": "s3-mounts",
    "datasets": "datasets",
    "flags": "flags",
    "attach_project_disk": "flags",
    "inputs": "inputs",
    "outputs": "outputs",
    "output_datasets": "output-datasets",
    "spark": "spark",
    "graceful_shutdown": "graceful-shutdown",
}
OVERRIDABLE = "name, desc, args, vars, env_vars, docker, working_storage, cloud_instance_types"


def _docker(value: str | DockerImage | Mapping[str, Any]) -> str | DockerImage:
    if isinstance(value, DockerImage):
        if not value.image.strip():
            raise Invalid("docker: the image cannot be empty", field="docker")
        return value
    if isinstance(value, str) and not value.strip():
        raise Invalid("docker: the image can be changed on fork but not removed", field="docker")
    # Reuse the config parser so a plain-text password is refused with the same message.
    cfg, _ = parse_config_data(
        {"cmd": "true", "env": {"docker": dict(value) if isinstance(value, Mapping) else value}}
    )
    assert cfg.env.docker is not None
    return cfg.env.docker


def _working_storage(value: WorkingStorage | Mapping[str, Any]) -> WorkingStorage:
    if isinstance(value, WorkingStorage):
        if value.type != "SSD":
            raise Invalid(
                f"working_storage.type must be SSD (got {value.type!r})", field="working-storage.type"
            )
        if not MIN_WORKING_STORAGE_GB <= value.size_gb <= MAX_WORKING_STORAGE_GB:
            raise Invalid("working_storage.size must be between 100Gb and 10Tb", field="working-storage.size")
        return value
    return parse_working_storage({k: str(v) for k, v in value.items()})


def apply_fork(
    cfg: JobConfig,
    *,
    args: Mapping[str, str] | None = None,
    vars: Mapping[str, str] | None = None,
    env_vars: Mapping[str, str] | None = None,
    name: str | None = None,
    desc: str | None = None,
    docker: str | DockerImage | Mapping[str, Any] | None = None,
    working_storage: WorkingStorage | Mapping[str, Any] | None = None,
    cloud_instance_types: Sequence[str] | str | None = None,
    **fixed: object,
) -> JobConfig:
    """The config of a fork of ``cfg``: the source with the given overrides (None: keep).

    ``args`` may only set names the source defines; ``vars`` may only re-point input or output
    variables (new input files are uploaded by the client); ``env_vars`` replaces the source's set.
    Any other keyword (``cmd=``, ``python=``, ``s3_mounts=``, ...) is refused, naming the field.
    """
    for key in fixed:
        target = FIXED_ON_FORK.get(key, key)
        raise Invalid(f"{target}: cannot be overridden on fork (only {OVERRIDABLE} can)", field=target)

    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = name
    if desc is not None:
        changes["desc"] = desc
    if args:
        new_args = dict(cfg.args)
        for key, value in args.items():
            if key not in cfg.args:
                known = ", ".join(cfg.args) or "none"
                raise Invalid(
                    f"args.{key}: the source job has no such argument (it has: {known})", field=f"args.{key}"
                )
            if not isinstance(value, str):
                raise Invalid(f"args.{key} must be a string", field=f"args.{key}")
            new_args[key] = value
        changes["args"] = new_args
    if vars:
        inputs, outputs = list(cfg.inputs), list(cfg.outputs)
        for key, path in vars.items():
            if not isinstance(path, str) or not path.strip():
                raise Invalid(f"vars.{key}: the new path must not be empty", field=f"vars.{key}")
            for entries in (inputs, outputs):
                hits = [i for i, p in enumerate(entries) if p.var == key]
                for i in hits:
                    entries[i] = VariablePath(path=path, var=key)
                if hits:
                    break
            else:
                raise Invalid(
                    f"vars.{key}: only variables of the source job's inputs or outputs can change on fork",
                    field=f"vars.{key}",
                )
        changes["inputs"], changes["outputs"] = tuple(inputs), tuple(outputs)
    env = cfg.env
    if env_vars is not None:
        pairs = [EnvVar(k, v) for k, v in env_vars.items()]
        for var in pairs:
            if not var.name or "=" in var.name or not isinstance(var.value, str):
                raise Invalid(
                    f"env_vars.{var.name}: invalid environment variable", field=f"env_vars.{var.name}"
                )
            check_env_var_name(var.name, f"env_vars.{var.name}")
        env = dataclasses.replace(env, vars=tuple(pairs))
    if docker is not None:
        env = dataclasses.replace(env, docker=_docker(docker))
    if env is not cfg.env:
        changes["env"] = env
    if working_storage is not None:
        changes["working_storage"] = _working_storage(working_storage)
    if cloud_instance_types is not None:
        types = (
            (cloud_instance_types,) if isinstance(cloud_instance_types, str) else tuple(cloud_instance_types)
        )
        if not types or not all(isinstance(t, str) and t.strip() for t in types):
            raise Invalid(
                "cloud_instance_types must be a non-empty list of names", field="cloud-instance-types"
            )
        changes["cloud_instance_types"] = tuple(t.strip() for t in types)

    forked = dataclasses.replace(cfg, **changes)
    check_unique_variables(forked)
    check_cmd_references(forked)
    return forked
