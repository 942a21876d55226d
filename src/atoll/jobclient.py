"""Jobs from the submitter's side (spec §5.5-§5.7), shared by the `atoll job` CLI and the SDK.

The flow is DataSphere's: parse and check ``config.yaml`` locally, detect the Python
environment, zip directories (deterministically, so the same directory always hashes the same),
hash every file, create the job, upload only the files the server asks for, execute, follow the
logs from byte offsets, and download the outputs into the working directory.

Paths in the config are relative to the current working directory, as with DataSphere's CLI;
outputs come back there too. Nothing here prints: callers get callbacks (``LogSink``,
``Transfer``) and decide how to show things. Every failure is an ``AtollError`` with one line.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any, Protocol

import httpx
import yaml

from atoll.client import AtollError, Client, FieldError
from atoll.errors import DomainError
from atoll.jobspec import JobConfig, check_local_files, parse_config, resolve_env_vars
from atoll.jobspec.archive import ArchiveError, extract, zip_dir
from atoll.jobspec.units import human_bytes
from atoll.states import JOB_TERMINAL, JobStatus

STREAMS = ("stdout", "stderr", "system")
LOG_FILES = {"stdout": "stdout.txt", "stderr": "stderr.txt", "system": "system.log"}
PROGRESS_FILE = "job_progress.jsonl"
POLL_S = 0.5
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


def _refused(e: AtollError, source: str | None) -> AtollError:
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


def _names_instance_types(text: str) -> bool:
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


# --- talking to the server ------------------------------------------------------------------


class JobClient:
    """The jobs API over a :class:`Client`, plus streaming uploads and downloads."""

    def __init__(self, client: Client) -> None:
        self.client = client
        headers = {"User-Agent": "atoll-client"}
        if client.token:
            headers["Authorization"] = f"Bearer {client.token}"
        # Bulk transfers get their own connection pool with long read timeouts: the server
        # hashes a whole file before it answers an upload.
        self._http = httpx.Client(
            base_url=client.url + "/api/v1", headers=headers, timeout=httpx.Timeout(60.0, read=900.0)
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> JobClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- plain calls

    def get(self, job_id: str) -> Job:
        job: Job = self.client.get(f"/jobs/{job_id}")
        return job

    def list_jobs(self, project_id: str) -> list[Job]:
        return list(self.client.paginate(f"/projects/{project_id}/jobs"))

    def execute(self, job_id: str) -> Job:
        job: Job = self.client.post(f"/jobs/{job_id}/execute")
        return job

    def cancel(self, job_id: str, graceful: bool = False) -> Job:
        job: Job = self.client.post(f"/jobs/{job_id}/cancel", {"graceful": graceful})
        return job

    def set_data_ttl(self, job_id: str, days: int | None) -> Job:
        job: Job = self.client.put(f"/jobs/{job_id}/data-ttl", {"days": days})
        return job

    def create(self, project_id: str, body: Job, source: str | None = None) -> tuple[Job, list[str]]:
        """Create a job; returns it and the sha256 of the files to upload before executing.

        ``source`` names the config file in the message if the server refuses the config.
        """
        try:
            created = self.client.post(f"/projects/{project_id}/jobs", body)
        except AtollError as e:
            raise _refused(e, source) from None
        return created["job"], list(created["missingFiles"])

    def fork(self, job_id: str, body: Job) -> tuple[Job, list[str]]:
        """Fork a job (POST /jobs/{id}/fork); returns the new job and the files to upload."""
        try:
            created = self.client.post(f"/jobs/{job_id}/fork", body)
        except AtollError as e:
            raise _refused(e, None) from None
        return created["job"], list(created["missingFiles"])

    def check_instance_types(self, project_id: str, types: Iterable[str], field: str) -> None:
        """Refuse configuration names the catalogue lacks, or a list none of which can run here.

        The server would accept such a job and fail it at once; refusing first creates nothing.
        """
        catalogue = {c["name"]: c for c in self.client.get("/configurations", projectId=project_id)}
        types = list(types)
        for i, name in enumerate(types):
            if name not in catalogue:
                known = ", ".join(sorted(catalogue)) or "none"
                raise AtollError(f"{field}[{i}]: unknown configuration {name!r} (known: {known})", status=422)
        usable = [
            n
            for n in types
            if catalogue[n].get("enabled", True)
            and catalogue[n].get("available", True)
            and catalogue[n].get("allowed") is not False
        ]
        if not usable:
            reasons = "; ".join(
                f"{n}: {catalogue[n].get('availabilityReason') or 'unavailable'}" for n in types
            )
            raise AtollError(
                f"{field}: none of {', '.join(types)} can run on this installation ({reasons}); "
                "choose one that can: `atoll config list`"
            )

    # -- the flows the CLI and the SDK share

    def upload_missing(
        self, project_id: str, blobs: list[Blob], missing: list[str], progress: Transfer | None = None
    ) -> Uploaded:
        """Upload what the server asked for (each content once) and say what was sent or reused."""
        plan = plan_uploads(blobs, missing)
        sent = self.upload(project_id, plan, progress) if plan else 0
        distinct = len({b.sha256 for b in blobs})
        return Uploaded(files=len(plan), bytes=sent, cached=distinct - len(plan))

    def submit(
        self,
        project_id: str,
        prepared: PreparedJob,
        *,
        name: str | None = None,
        desc: str | None = None,
        data_ttl_days: int | None = 14,
        progress: Transfer | None = None,
    ) -> tuple[Job, Uploaded]:
        """Create a prepared job and upload its missing files; it is ready to execute."""
        source = str(prepared.config_path)
        types = list(prepared.config.cloud_instance_types)
        if not _names_instance_types(prepared.text):  # the server runs it on the project's default
            project = self.client.get(f"/projects/{project_id}")
            default = (project.get("settings") or {}).get("defaultConfiguration")
            types = [default] if default else types
        try:
            self.check_instance_types(project_id, types, "cloud-instance-types")
        except AtollError as e:
            raise AtollError(f"{source}: {e.message()}", status=e.status) from None
        job, missing = self.create(project_id, prepared.body(name, desc, data_ttl_days), source=source)
        return job, self.upload_missing(project_id, prepared.blobs(), missing, progress)

    def fork_job(
        self,
        source_job_id: str,
        *,
        args: Mapping[str, str] | None = None,
        vars: Mapping[str, str] | None = None,
        env_vars: Mapping[str, str] | None = None,
        name: str | None = None,
        desc: str | None = None,
        cloud_instance_types: list[str] | None = None,
        progress: Transfer | None = None,
    ) -> tuple[Job, Uploaded]:
        """Fork a job with overrides (spec §5.7) and upload new input files; ready to execute.

        ``vars`` maps a variable of the source's inputs (a local file or directory to send
        instead) or outputs (the path to save it at) to a path.
        """
        source = self.get(source_job_id)
        if cloud_instance_types:
            self.check_instance_types(source["projectId"], cloud_instance_types, "cloud_instance_types")
        with tempfile.TemporaryDirectory(prefix="atoll-fork-") as scratch:
            new_inputs, output_vars, blobs = _fork_vars(source, dict(vars or {}), Path(scratch))
            body = {
                "args": dict(args) if args else None,
                "vars": new_inputs or None,
                "outputVars": output_vars or None,
                "envVars": dict(env_vars) if env_vars is not None else None,
                "name": name,
                "desc": desc,
                "cloudInstanceTypes": cloud_instance_types or None,
            }
            job, missing = self.fork(source_job_id, {k: v for k, v in body.items() if v is not None})
            return job, self.upload_missing(job["projectId"], blobs, missing, progress)

    # -- transfers

    def _fail(self, response: httpx.Response) -> AtollError:
        return AtollError.from_response(response)

    @contextlib.contextmanager
    def _transfer(self, what: str) -> Iterator[None]:
        try:
            yield
        except httpx.HTTPError as e:
            raise AtollError(f"{what} failed: cannot reach Atoll at {self.client.url} ({e})") from None

    def upload(self, project_id: str, blobs: Iterable[Blob], progress: Transfer | None = None) -> int:
        """PUT each blob's bytes; returns the number of bytes sent."""
        sent = 0
        for b in blobs:
            done = 0

            def chunks(b: Blob = b) -> Iterator[bytes]:
                nonlocal done
                with b.file.open("rb") as f:
                    while chunk := f.read(CHUNK):
                        yield chunk
                        done += len(chunk)
                        if progress:
                            progress(b.path, done, b.size)

            if progress:
                progress(b.path, 0, b.size)
            with self._transfer(f"uploading {b.path}"):
                r = self._http.put(
                    f"/projects/{project_id}/blobs/{b.sha256}",
                    content=chunks(),
                    headers={"Content-Type": "application/octet-stream", "Content-Length": str(b.size)},
                )
            if r.status_code >= 400:
                raise self._fail(r)
            sent += b.size
        return sent

    def download(self, job_id: str, out: Job, dest: Path, progress: Transfer | None = None) -> Path:
        """Fetch one output into ``dest`` (a directory output is unzipped there); checks its sha256."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=".atoll-download-")
        tmp = Path(tmp_name)
        try:
            h = hashlib.sha256()
            with os.fdopen(fd, "wb") as f, self._transfer(f"downloading {out['path']}"):
                with self._http.stream("GET", f"/jobs/{job_id}/files/{out['sha256']}") as r:
                    if r.status_code >= 400:
                        r.read()
                        raise self._fail(r)
                    done = 0
                    total = int(out.get("size") or 0)
                    if progress:
                        progress(out["path"], 0, total)
                    for chunk in r.iter_bytes(CHUNK):
                        f.write(chunk)
                        h.update(chunk)
                        done += len(chunk)
                        if progress:
                            progress(out["path"], done, total)
            if h.hexdigest() != out["sha256"]:
                raise AtollError(f"{out['path']}: the downloaded bytes do not match their sha256; try again")
            # Never delete what is in the way: it may be the user's own work.
            if out.get("isDir"):
                if dest.exists() and not dest.is_dir():
                    raise AtollError(
                        f"output {out['path']} is a directory, but {dest} is a file: move it away"
                    )
                dest.mkdir(parents=True, exist_ok=True)
                safe_extract(tmp, dest)
            else:
                if dest.is_dir():
                    raise AtollError(
                        f"output {out['path']} is a file, but {dest} is a directory: move it away"
                    )
                os.replace(tmp, dest)
            return dest
        finally:
            tmp.unlink(missing_ok=True)

    def download_outputs(self, job: Job, dest_dir: Path, progress: Transfer | None = None) -> list[Path]:
        """Every output of ``job``, at its config path under ``dest_dir`` (absolute paths as they are)."""
        return [
            self.download(job["id"], out, output_path(out["path"], dest_dir), progress)
            for out in job.get("outputFiles", [])
        ]

    def read_log(self, job_id: str, stream: str, offset: int) -> Job:
        """One slice of a log from a byte offset: {data, offset, eof, status}."""
        chunk: Job = self.client.get(f"/jobs/{job_id}/logs", stream=stream, offset=offset)
        return chunk

    def download_logs(self, job_id: str, dest_dir: Path) -> list[Path]:
        """The job's stdout, stderr and system log as stdout.txt, stderr.txt and system.log."""
        dest_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for stream in STREAMS:
            path = dest_dir / LOG_FILES[stream]
            offset = 0
            with path.open("w", encoding="utf-8") as f:
                while True:
                    chunk = self.read_log(job_id, stream, offset)
                    if not chunk["data"]:
                        break
                    f.write(chunk["data"])
                    offset = chunk["offset"]
            paths.append(path)
        return paths


@dataclass(frozen=True)
class Uploaded:
    """What an upload did: files and bytes sent, and files the server already had."""

    files: int
    bytes: int
    cached: int


def _fork_vars(
    source: Job, given: dict[str, str], scratch: Path
) -> tuple[dict[str, Any], dict[str, str], list[Blob]]:
    """Fork ``vars`` split into new input files (hashed here) and new output paths."""
    try:
        cfg, _ = parse_config(source.get("config") or "")
    except DomainError as e:
        raise config_error(e, f"job {source['id']}'s config") from None
    inputs = {p.var for p in cfg.inputs if p.var}
    outputs = {p.var for p in cfg.outputs if p.var}
    new_inputs: dict[str, Any] = {}
    output_vars: dict[str, str] = {}
    blobs = []
    for name, path in given.items():
        if name in inputs:
            local = Path(path)
            if not local.exists():
                raise AtollError(f"vars.{name}: no such file or directory: {path}")
            blob = make_blob(path, name, local, scratch)
            blobs.append(blob)
            new_inputs[name] = blob.ref()
        elif name in outputs:
            output_vars[name] = path
        else:
            known = ", ".join(sorted(inputs | outputs)) or "none"
            raise AtollError(
                f"vars.{name}: job {source['id']} has no input or output variable {name} (it has: {known})"
            )
    return new_inputs, output_vars, blobs


def output_path(path: str, dest_dir: Path) -> Path:
    """Where an output lands: its relative config path under ``dest_dir``, or its absolute path."""
    p = PurePosixPath(path)
    if p.is_absolute():
        return Path(path)
    if ".." in p.parts:
        raise AtollError(f"output path {path!r} points outside the working directory")
    return dest_dir / p


def safe_extract(archive: Path, dest: Path) -> None:
    """Unzip a downloaded result into ``dest`` under the archive rules both sides share."""
    try:
        extract(archive, dest)
    except ArchiveError as e:
        raise AtollError(str(e)) from None


# --- following a job ------------------------------------------------------------------------


class LogSink(Protocol):
    """Where a followed job's output goes."""

    def stdout(self, text: str) -> None: ...
    def stderr(self, text: str) -> None: ...
    def system(self, text: str) -> None: ...
    def progress(self, progress: Mapping[str, Any]) -> None: ...
    def status(self, status: str, details: str) -> None: ...


def default_log_dir(job_id: str) -> Path:
    """Where a job's local log files go unless told otherwise (a per-user temporary directory)."""
    return Path(tempfile.gettempdir()) / f"atoll-{os.getuid()}" / "jobs" / job_id


class LocalLogs:
    """The log directory DataSphere's CLI writes: stdout.txt, stderr.txt, system.log, job_progress.jsonl."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        # Logs are fetched from offset 0 every time, so each session rewrites complete files.
        self._files = {s: (path / LOG_FILES[s]).open("w", encoding="utf-8") for s in STREAMS}
        self._progress = (path / PROGRESS_FILE).open("a", encoding="utf-8")

    def write(self, stream: str, text: str) -> None:
        f = self._files[stream]
        f.write(text)
        f.flush()

    def progress(self, progress: Mapping[str, Any]) -> None:
        record = {
            "progress": progress.get("progress"),
            "message": progress.get("message", ""),
            "create_time": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        }
        self._progress.write(json.dumps(record) + "\n")
        self._progress.flush()

    def close(self) -> None:
        for f in [*self._files.values(), self._progress]:
            f.close()


class Follower:
    """Follows a job's logs and progress until it ends; can be resumed after an interruption.

    Every log is read from offset 0 into the local log files; the sink sees only what comes
    after the end of the logs at the start unless ``from_start`` (attach resumes "from now",
    like DataSphere's offset -1; execute shows everything).
    """

    def __init__(
        self,
        jobs: JobClient,
        job_id: str,
        sink: LogSink,
        *,
        log_dir: Path | None = None,
        from_start: bool = True,
        poll_s: float = POLL_S,
    ) -> None:
        self.jobs = jobs
        self.job_id = job_id
        self.sink = sink
        self.local = LocalLogs(log_dir) if log_dir is not None else None
        self.poll_s = poll_s
        self.offsets = dict.fromkeys(STREAMS, 0)
        self._caught_up = from_start
        self._progress: Any = None
        self._state: tuple[str, str] | None = None
        self._last_job_poll = 0.0

    def _emit(self, stream: str, text: str, show: bool) -> None:
        if self.local is not None:
            self.local.write(stream, text)
        if show:
            getattr(self.sink, stream)(text)

    def _poll_job(self, force: bool = False) -> Job | None:
        now = time.monotonic()
        if not force and now - self._last_job_poll < 1.0:
            return None
        self._last_job_poll = now
        job = self.jobs.get(self.job_id)
        state = (job["status"], job.get("statusDetails") or "")
        if state != self._state:
            self._state = state
            self.sink.status(*state)
        progress = job.get("progress") or {}
        if progress and progress != self._progress:
            self._progress = progress
            if self.local is not None:
                self.local.progress(progress)
            self.sink.progress(progress)
        return job

    def _round(self, show: bool) -> tuple[bool, bool]:
        """Read every stream once; returns (any data came, every stream is at its end)."""
        got, ended = False, True
        for stream in STREAMS:
            chunk = self.jobs.read_log(self.job_id, stream, self.offsets[stream])
            if chunk["data"]:
                got = True
                self._emit(stream, chunk["data"], show)
                self.offsets[stream] = chunk["offset"]
            ended = ended and bool(chunk["eof"])
        return got, ended

    def run(self, stop: Callable[[], bool] | None = None) -> Job | None:
        """Stream until the job ends (and its logs are read to the end); returns the final job.

        ``stop`` is asked between reads (e.g. "was Ctrl+C pressed?"); when it says yes, ``run``
        returns None at once, with nothing half written, and a later ``run`` goes on from there.
        """
        stopped = stop or (lambda: False)
        if not self._caught_up:
            while self._round(show=False)[0]:
                if stopped():
                    return None
            self._caught_up = True
        while not stopped():
            self._poll_job()
            got, ended = self._round(show=True)
            if ended:
                job = self._poll_job(force=True)
                assert job is not None
                return job
            if not got:
                deadline = time.monotonic() + self.poll_s
                while not stopped() and time.monotonic() < deadline:
                    time.sleep(0.05)
        return None

    def close(self) -> None:
        if self.local is not None:
            self.local.close()


def wait_until_done(jobs: JobClient, job_id: str, poll_s: float = 2.0) -> Job:
    """Poll a job until it ends, reading no logs (what an SDK's ``.done`` check does in a loop)."""
    while True:
        job = jobs.get(job_id)
        if job["status"] in JOB_TERMINAL:
            return job
        time.sleep(poll_s)


def failure_message(job: Job) -> str | None:
    """Why a finished job did not succeed, in one line; None for SUCCESS."""
    if job["status"] == JobStatus.SUCCESS:
        return None
    if job["status"] == JobStatus.CANCELLED:
        return f"job {job['id']} was cancelled" + (
            f" ({job['statusDetails']})" if job.get("statusDetails") else ""
        )
    code = job.get("returnCode")
    details = job.get("statusDetails") or ""
    if code not in (None, 0) and (not details or "exited with code" in details):
        return f"job {job['id']} failed: program exited with code {code}"
    return f"job {job['id']} failed: {details or job['status']}"


def describe_outputs(paths: Iterable[Path], base: Path) -> list[str]:
    """Output paths for people: relative to ``base`` where they are under it, with sizes."""
    shown = []
    for p in paths:
        try:
            name = p.relative_to(base).as_posix()
        except ValueError:
            name = str(p)
        if p.is_dir():
            shown.append(f"{name}/")
        else:
            shown.append(f"{name} ({human_bytes(p.stat().st_size)})")
    return shown
