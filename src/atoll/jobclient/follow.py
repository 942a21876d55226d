"""Following a job: its logs from byte offsets into local files and a sink, its progress, its end."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from atoll.jobclient.api import JobClient
from atoll.jobclient.pack import FOLLOW_WAIT_S, LOG_FILES, PROGRESS_FILE, STREAMS, Job
from atoll.jobspec.units import human_bytes
from atoll.states import JOB_TERMINAL, JobStatus

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

    Each round is one long-polling call (``JobClient.follow``): the server answers as soon as
    output is written or the job moves, so output shows as it comes, without a poll interval.
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
        wait_s: float = FOLLOW_WAIT_S,
    ) -> None:
        self.jobs = jobs
        self.job_id = job_id
        self.sink = sink
        self.local = LocalLogs(log_dir) if log_dir is not None else None
        self.wait_s = wait_s
        self.offsets = dict.fromkeys(STREAMS, 0)
        self._caught_up = from_start
        self._progress: Any = None
        self._state: tuple[str, str] | None = None
        self._seen = ""  # the server's digest of the job as last shown

    def _emit(self, stream: str, text: str, show: bool) -> None:
        if self.local is not None:
            self.local.write(stream, text)
        if show:
            getattr(self.sink, stream)(text)

    def _show_job(self, job: Job) -> None:
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

    def _round(self, show: bool, wait_s: float) -> Job:
        """One call: what is new (after waiting up to ``wait_s`` for it), written and shown."""
        news = self.jobs.follow(self.job_id, self.offsets, self._seen, wait_s)
        for chunk in news["chunks"]:
            self._emit(chunk["stream"], chunk["data"], show)
            self.offsets[chunk["stream"]] = chunk["offset"]
        self._seen = news["state"]
        return news

    def run(self, stop: Callable[[], bool] | None = None) -> Job | None:
        """Stream until the job ends (and its logs are read to the end); returns the final job.

        ``stop`` is asked between calls (e.g. "was Ctrl+C pressed?"), so at most ``wait_s`` after
        it says yes, ``run`` returns None, with nothing half written, and a later ``run`` goes on
        from there.
        """
        stopped = stop or (lambda: False)
        if not self._caught_up:
            while self._round(show=False, wait_s=0.0)["chunks"]:
                if stopped():
                    return None
            self._caught_up = True
        while not stopped():
            news = self._round(show=True, wait_s=self.wait_s)
            self._show_job(news["job"])
            if news["eof"]:
                job: Job = news["job"]
                return job
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
