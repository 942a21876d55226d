"""The jobs API as the submitter uses it: create, upload what the server lacks, execute, fork,
cancel, download the outputs."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any

import httpx

from atoll.client import AtollError, Client
from atoll.errors import DomainError
from atoll.jobclient.pack import (
    CHUNK,
    LOG_FILES,
    STREAMS,
    Blob,
    Job,
    PreparedJob,
    Transfer,
    config_error,
    make_blob,
    names_instance_types,
    plan_uploads,
    refused,
)
from atoll.jobspec import parse_config
from atoll.jobspec.archive import ArchiveError, extract

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
            raise refused(e, source) from None
        return created["job"], list(created["missingFiles"])

    def fork(self, job_id: str, body: Job) -> tuple[Job, list[str]]:
        """Fork a job (POST /jobs/{id}/fork); returns the new job and the files to upload."""
        try:
            created = self.client.post(f"/jobs/{job_id}/fork", body)
        except AtollError as e:
            raise refused(e, None) from None
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
            reasons = "; ".join(f"{n}: {_why_not(catalogue[n])}" for n in types)
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
        if not names_instance_types(prepared.text):  # the server runs it on the project's default
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

    def follow(self, job_id: str, offsets: Mapping[str, int], state: str, wait_s: float) -> Job:
        """What is new in a job past ``offsets`` (its three logs) and since ``state``; the server
        waits up to ``wait_s`` for news: {job, chunks: [{stream, data, offset}], state, eof}."""
        news: Job = self.client.get(
            f"/jobs/{job_id}/follow", **offsets, state=state, wait=wait_s, timeout=wait_s + 30
        )
        return news

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


def _why_not(cfg: dict[str, Any]) -> str:
    """Why a catalogue entry cannot run a job: the community's allow-list first (the entry may
    well fit the pool), then the machine."""
    if cfg.get("allowed") is False:
        return "not allowed in this project's community"
    if not cfg.get("enabled", True):
        return "disabled by the administrator"
    return str(cfg.get("availabilityReason") or "unavailable")
