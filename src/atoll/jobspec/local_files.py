"""Client-side checks before upload: local files exist and fit the limits (spec §5.2, §5.8).

DataSphere's CLI runs these on the submitter's machine (``check_limits``); the server never sees
the local file system, so they are kept apart from the pure parser.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from atoll.errors import Invalid
from atoll.jobspec.archive import MAX_FILE_BYTES, MAX_TOTAL_BYTES
from atoll.jobspec.config import EnvVar, JobConfig
from atoll.jobspec.units import human_bytes

_FILE_LIMIT = human_bytes(MAX_FILE_BYTES)
_TOTAL_LIMIT = human_bytes(MAX_TOTAL_BYTES)


class LocalFile(NamedTuple):
    """A local path to upload. A directory is zipped by the client; ``size`` is its files' total."""

    path: str  # as written in the config
    size: int
    is_dir: bool
    field: str


def _measure(path: Path, shown: str, field: str) -> tuple[int, bool]:
    """Size of a file, or of all files under a directory, refusing any single file over the limit."""
    if path.is_file():
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise Invalid(
                f"{field}: {shown} is {human_bytes(size)}, over the {_FILE_LIMIT} limit per file",
                field=field,
            )
        return size, False
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            file = Path(root) / name
            if not file.is_file():  # dangling links, sockets: nothing to upload
                continue
            size = file.stat().st_size
            if size > MAX_FILE_BYTES:
                rel = f"{shown.rstrip('/')}/{file.relative_to(path).as_posix()}"
                raise Invalid(
                    f"{field}: {rel} is {human_bytes(size)}, over the {_FILE_LIMIT} limit per file",
                    field=field,
                )
            total += size
    return total, True


def check_local_files(
    cfg: JobConfig, base_dir: Path, *, local_modules: Sequence[str] = ()
) -> list[LocalFile]:
    """Check and list the local paths a job uploads: inputs, the requirements file, Python paths.

    Paths are relative to ``base_dir`` (the directory of config.yaml) unless absolute. Each must
    exist; each file is at most 5 GB; all of them together (with ``local_modules``, the Python
    modules found by detection) at most 10 GB. Directories are listed with ``is_dir`` set: the
    client zips them. Raises ``Invalid`` naming the entry (``inputs[2]``, ...).
    """
    wanted: list[tuple[str, str]] = [(p.path, f"inputs[{i}]") for i, p in enumerate(cfg.inputs)]
    py = cfg.env.python
    if py is not None:
        if py.requirements_file is not None:
            wanted.append((py.requirements_file, "env.python.requirements-file"))
        for key, paths in (("root-paths", py.root_paths), ("local-paths", py.local_paths)):
            wanted += [(p, f"env.python.{key}[{i}]") for i, p in enumerate(paths or ())]
    wanted += [(p, f"local-modules[{i}]") for i, p in enumerate(local_modules)]

    out: list[LocalFile] = []
    counted: set[Path] = set()
    total = 0
    for shown, field in wanted:
        path = Path(shown) if os.path.isabs(shown) else base_dir / shown
        if not path.exists():
            raise Invalid(f"{field}: no such file or directory: {shown}", field=field)
        size, is_dir = _measure(path, shown, field)
        out.append(LocalFile(shown, size, is_dir, field))
        real = path.resolve()
        if real not in counted:  # the same file listed twice is uploaded once
            counted.add(real)
            total += size
    if total > MAX_TOTAL_BYTES:
        what = "input files and Python local modules" if py is not None else "input files"
        raise Invalid(
            f"inputs: total size of {what} is {human_bytes(total)}, over the {_TOTAL_LIMIT} limit",
            field="inputs",
        )
    return out


def resolve_env_vars(cfg: JobConfig, environ: Mapping[str, str]) -> JobConfig:
    """Fill ``env.vars`` entries written as a bare ``- NAME`` from the submitter's environment.

    DataSphere copies them from the local environment when the job is submitted; a name that
    is not set there is an error naming ``env.vars[i]``.
    """
    filled = []
    for i, var in enumerate(cfg.env.vars):
        if var.value is None:
            if var.name not in environ:
                raise Invalid(
                    f"env.vars[{i}]: environment variable {var.name} is not set", field=f"env.vars[{i}]"
                )
            var = EnvVar(var.name, environ[var.name])
        filled.append(var)
    return dataclasses.replace(cfg, env=dataclasses.replace(cfg.env, vars=tuple(filled)))
