"""Preparing a job on the submitter's side: the config checked, files hashed and packed, the
Python environment detected; and the one-line errors the CLI shows."""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any

import yaml

from atoll.client import AtollError, FieldError
from atoll.errors import DomainError
from atoll.jobspec import JobConfig, check_local_files, parse_config, resolve_env_vars
from atoll.jobspec.archive import zip_dir

STREAMS = ("stdout", "stderr", "system")
LOG_FILES = {"stdout": "stdout.txt", "stderr": "stderr.txt", "system": "system.log"}
PROGRESS_FILE = "job_progress.jsonl"
# How long one follow call may wait for news: also how soon Ctrl+C is seen while following.
FOLLOW_WAIT_S = 1.0
CHUNK = 1 << 20
MODULE_EXCLUDES = frozenset({"__pycache__", ".git", ".mypy_cache", ".pytest_cache", ".ruff_cache"})

Job = dict[str, Any]
Transfer = Callable[[str, int, int], None]  # (name, bytes done so far, total bytes)


# --- errors ---------------------------------------------------------------------------------


def config_error(e: DomainError, source: str = "config") -> AtollError:
    """One line naming the config file and the field: ``config.yaml: inputs[1]: no such file ...``."""
    text = e.detail
    if e.field and not text.startswith(e.field):
        text = f"{e.field}: {text}"
    return AtollError(f"{source}: {text}", status=422, title="Invalid config")


def _strip_field(field: str, message: str) -> str:
    while field and message.startswith(f"{field}: "):
        message = message.removeprefix(f"{field}: ")
    return message


def refused(e: AtollError, source: str | None) -> AtollError:
    """A refused create/fork as one line: the field once (the API may repeat it), then the reason.

    With ``source`` (the config file) an invalid-input answer reads like a local check's.
    """
    e.errors = [FieldError(x.field, _strip_field(x.field, x.message)) for x in e.errors]
    if source and e.status == 422:
        return AtollError(f"{source}: {e.message()}", status=422, title=e.title)
    return e


# --- local files ----------------------------------------------------------------------------


def sha256_file(path: Path) -> tuple[str, int]:
    """The sha256 hex digest and size of a file, read in chunks."""
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


@dataclass(frozen=True)
class Blob:
    """A file the job needs: an input or a local Python module, as the server will place it.

    ``path`` and ``var`` are as written in the config; ``local`` is where it is on this machine;
    ``file`` is what is uploaded (the file itself, or a zip of a directory).
    """

    path: str
    var: str | None
    local: Path
    file: Path
    sha256: str
    size: int
    is_dir: bool = False

    def ref(self) -> dict[str, Any]:
        """The API's FileRef."""
        return {
            "path": self.path,
            "var": self.var,
            "sha256": self.sha256,
            "size": self.size,
            "isDir": self.is_dir,
            # The server restores the executable bit, so `cmd: ./run.sh` works as locally.
            "executable": not self.is_dir and os.access(self.local, os.X_OK),
        }


def make_blob(path: str, var: str | None, local: Path, scratch: Path, exclude: Collection[str] = ()) -> Blob:
    """Hash a local file, or zip a directory into ``scratch`` and hash the archive."""
    if local.is_dir():
        archive = scratch / f"{len(list(scratch.iterdir()))}-{local.name or 'dir'}.zip"
        zip_dir(local, archive, exclude)
        sha, size = sha256_file(archive)
        return Blob(path, var, local, archive, sha, size, is_dir=True)
    sha, size = sha256_file(local)
    return Blob(path, var, local, local, sha, size)


def plan_uploads(blobs: Iterable[Blob], missing: Collection[str]) -> list[Blob]:
    """The blobs to upload: those whose sha256 the server lacks, each content once, in order.

    A digest the server asks for that none of ``blobs`` has is an error (it would never run).
    """
    wanted = set(missing)
    plan: dict[str, Blob] = {}
    for b in blobs:
        if b.sha256 in wanted and b.sha256 not in plan:
            plan[b.sha256] = b
    unknown = wanted - set(plan)
    if unknown:
        raise AtollError(f"the server asks for a file this job does not have ({sorted(unknown)[0][:12]})")
    return list(plan.values())


def names_instance_types(text: str) -> bool:
    """Whether config.yaml names its instance types (else the project's default configuration is used)."""
    data = yaml.load(text, Loader=yaml.BaseLoader)  # noqa: S506 -- BaseLoader builds no objects
    return isinstance(data, dict) and any(
        data.get(k) not in (None, "", []) for k in ("cloud-instance-types", "cloud-instance-type")
    )


def _local_path(path: str, base: Path) -> Path:
    p = Path(path)
    return p if p.is_absolute() else base / p


# --- preparing a job ------------------------------------------------------------------------


@dataclass
class PreparedJob:
    """A checked config with its files hashed, ready to create. Close it to drop the zips."""

    config_path: Path
    text: str
    config: JobConfig
    base_dir: Path
    inputs: list[Blob]
    modules: list[Blob]
    python: dict[str, Any] | None
    env_vars: dict[str, str]
    warnings: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)  # what detection found, for people
    scratch: tempfile.TemporaryDirectory[str] | None = None

    def blobs(self) -> list[Blob]:
        return [*self.inputs, *self.modules]

    def body(self, name: str | None = None, desc: str | None = None, data_ttl_days: int | None = 14) -> Job:
        """The POST /projects/{id}/jobs body."""
        return {
            "config": self.text,
            "name": name,
            "desc": desc,
            "inputs": [b.ref() for b in self.inputs],
            "modules": [b.ref() for b in self.modules],
            "python": self.python,
            "envVars": self.env_vars,
            "dataTtlDays": data_ttl_days,
        }

    def close(self) -> None:
        if self.scratch is not None:
            self.scratch.cleanup()
            self.scratch = None

    def __enter__(self) -> PreparedJob:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _interpreter() -> Any:
    """The interpreter whose packages pin the requirements: the active venv if it is not ours."""
    from atoll.envs.interpreter import Interpreter

    venv = os.environ.get("VIRTUAL_ENV")
    if venv and Path(venv).resolve() != Path(sys.prefix).resolve():
        python = Path(venv) / "bin" / "python"
        if python.exists():
            return Interpreter.inspect(str(python))
    return None


def prepare_job(
    config_path: Path,
    *,
    base_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    interpreter: Any = None,
) -> PreparedJob:
    """Read, parse and check ``config_path``; detect the Python env; hash (and zip) every file.

    Relative paths are taken from ``base_dir`` (default: the working directory). Raises an
    ``AtollError`` naming the config file and the field for anything the server would refuse
    or the job could not run with; nothing is sent anywhere.
    """
    from atoll.envs.detect import detect_python_env

    base = (base_dir or Path.cwd()).resolve()
    source = str(config_path)
    try:
        text = config_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AtollError(f"{source}: no such config file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise AtollError(f"{source}: cannot read it ({e})") from None
    prepared: PreparedJob | None = None
    try:
        cfg, warnings = parse_config(text)
        cfg = resolve_env_vars(cfg, os.environ if environ is None else environ)
        spec = None
        if cfg.env.python is not None:
            spec = detect_python_env(cfg, base, interpreter=interpreter or _interpreter())
        modules = list(spec.local_modules) if spec else []
        for i, m in enumerate(modules):
            p = PurePosixPath(m)
            if p.is_absolute() or ".." in p.parts:
                where = "env.python.local-paths"
                raise AtollError(f"{source}: {where}[{i}]: {m} must be a relative path inside the project")
        check_local_files(cfg, base, local_modules=modules)
        scratch = tempfile.TemporaryDirectory(prefix="atoll-job-")
        prepared = PreparedJob(config_path, text, cfg, base, [], [], None, {}, warnings, scratch=scratch)
        root = Path(scratch.name)
        for spec_path in cfg.inputs:
            local = _local_path(spec_path.path, base)
            prepared.inputs.append(make_blob(spec_path.path, spec_path.var, local, root))
        for m in modules:
            prepared.modules.append(make_blob(m, None, base / m, root, MODULE_EXCLUDES))
        prepared.env_vars = {v.name: v.value for v in cfg.env.vars if v.value is not None}
        if spec is not None:
            prepared.python = {"version": spec.version, "requirements": list(spec.requirements)}
            if spec.pip is not None and spec.pip != type(spec.pip)():
                prepared.python["pip"] = {
                    "indexUrl": spec.pip.index_url,
                    "extraIndexUrls": list(spec.pip.extra_index_urls),
                    "trustedHosts": list(spec.pip.trusted_hosts),
                    "noDeps": spec.pip.no_deps,
                }
            reqs = ", ".join(spec.requirements) or "none"
            prepared.messages.append(
                f"Python {spec.version}; requirements: {reqs}; local modules: {', '.join(modules) or 'none'}"
            )
            prepared.messages += spec.messages
        return prepared
    except DomainError as e:
        if prepared is not None:
            prepared.close()
        raise config_error(e, source) from None
    except BaseException:
        if prepared is not None:
            prepared.close()
        raise
