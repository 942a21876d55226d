"""How `atoll job` shows a running job in the terminal: upload and download bars, the program's
output as it is written, status lines, Ctrl-C (first: cancel gracefully, second: at once), and
the end (outputs downloaded, the exit code passed on)."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

from atoll.cli.datasets import gb
from atoll.cli.output import (
    err,
    fail,
    warn,
)
from atoll.client import AtollError
from atoll.errors import DomainError
from atoll.jobclient import (
    Follower,
    Job,
    JobClient,
    Transfer,
    Uploaded,
    default_log_dir,
    describe_outputs,
    failure_message,
)
from atoll.jobspec import parse_config
from atoll.jobspec.units import human_bytes
from atoll.states import JOB_TERMINAL


def info(message: str) -> None:
    """A line from this command (not from the program) on stderr."""
    err.print(message, markup=False, soft_wrap=True)


@contextlib.contextmanager
def bars(verb: str) -> Iterator[Transfer]:
    """Rich progress bars on a terminal; one plain line per file otherwise (logs, CI)."""
    if not err.is_terminal:
        seen: set[str] = set()

        def plain(name: str, done: int, total: int) -> None:
            if name not in seen:
                seen.add(name)
                info(f"{verb} {name} ({human_bytes(total)})")

        yield plain
        return
    from rich.progress import (  # bars only on a terminal: not every start pays for them
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err) as progress:
        tasks: dict[str, Any] = {}

        def update(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = progress.add_task(f"{verb} {name}", total=total or None)
            progress.update(tasks[name], completed=done)

        yield update


class TerminalSink:
    """The program's stdout and stderr as they are; system lines and progress dimmed on stderr."""

    def stdout(self, text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    def stderr(self, text: str) -> None:
        sys.stderr.write(text)
        sys.stderr.flush()

    def system(self, text: str) -> None:
        for line in text.splitlines():
            err.print(line, style="dim", markup=False, soft_wrap=True)

    def progress(self, progress: Mapping[str, Any]) -> None:
        value = progress.get("progress")
        shown = f"{value}%" if value is not None else ""
        err.print(f"progress: {shown} {progress.get('message') or ''}".rstrip(), style="cyan", markup=False)

    def status(self, status: str, details: str) -> None:
        if status in JOB_TERMINAL:
            return  # the closing "finished: ..." line says it
        err.print(f"status: {status}" + (f" ({details})" if details else ""), style="dim", markup=False)


# --- the shared flow: upload, follow, finish ------------------------------------------------


def report_upload(up: Uploaded) -> None:
    if up.files:
        info(f"uploaded {up.files} file(s) ({human_bytes(up.bytes)}); {up.cached} already on the server")
    elif up.cached:
        info(f"nothing to upload: all {up.cached} file(s) are already on the server")


def _has_graceful_shutdown(job: Job) -> bool:
    try:
        cfg, _ = parse_config(job.get("config") or "")
    except DomainError:
        return False
    return cfg.graceful_shutdown is not None


class Interrupts:
    """Ctrl+C while following only raises a flag, so a log chunk is never half shown or saved."""

    def __init__(self) -> None:
        self.pending = False

    def _raise_flag(self, signum: int, frame: FrameType | None) -> None:
        self.pending = True

    def __enter__(self) -> Interrupts:
        self._previous = signal.signal(signal.SIGINT, self._raise_flag)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self._previous)

    def ask_cancel(self) -> bool | None:
        """True: cancel, False: detach (the default), None: a second Ctrl+C, which forces the cancel."""
        self.pending = False
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            err.print("cancel job? [y/N] ", end="", markup=False)
            answer = sys.stdin.readline()
        except KeyboardInterrupt:
            err.print()
            return None
        finally:
            signal.signal(signal.SIGINT, self._raise_flag)
        return answer.strip().lower() in ("y", "yes")


def _cancel(jc: JobClient, job_id: str, graceful: bool) -> None:
    try:
        job = jc.cancel(job_id, graceful=graceful)
    except AtollError as e:
        if e.status == 409:  # it ended meanwhile: following shows how
            return
        raise
    how = "gracefully" if graceful else "now (SIGKILL)"
    info(f"cancelling job {job_id} {how}: {job['status']}")


def _follow(jc: JobClient, follower: Follower, job: Job) -> Job | None:
    """Follow until the job ends; Ctrl+C asks whether to cancel. None: the user detached."""
    graceful = _has_graceful_shutdown(job)
    cancelling = False
    with Interrupts() as ctrl_c:
        while True:
            final = follower.run(stop=lambda: ctrl_c.pending)
            if final is not None:
                return final
            if cancelling:  # Ctrl+C again while cancelling: stop waiting for the graceful signal
                ctrl_c.pending = False
                _cancel(jc, job["id"], graceful=False)
                continue
            answer = ctrl_c.ask_cancel()
            if answer is False:
                info(
                    f"job {job['id']} keeps running; follow it again with `atoll job attach --id {job['id']}`"
                )
                return None
            _cancel(jc, job["id"], graceful=graceful and answer is True)
            cancelling = True


def _finish(jc: JobClient, job: Job, dest: Path) -> None:
    """Download the outputs, report them, and fail with one line unless the job succeeded."""
    info(f"job {job['id']} finished: {job['status']}")
    if job.get("outputFiles"):
        with bars("downloading") as bar:
            paths = jc.download_outputs(job, dest, bar)
        info("outputs: " + ", ".join(describe_outputs(paths, dest)))
    for e in job.get("fileErrors") or []:
        warn(f"output {e.get('path')} was not saved ({e.get('error')})")
    made = [d for d in job.get("outputDatasets") or [] if d.get("id")]
    if made:  # as DataSphere's CLI reports them
        info(
            "Created datasets:\n"
            + "\n".join(f"* {d['id']} ({d['name']}) size: {gb(d['sizeBytes'])}" for d in made)
        )
    for d in job.get("outputDatasets") or []:
        if d.get("error"):
            warn(f"output dataset {d['name']} was not created: {d['error']}")
    message = failure_message(job)
    if message:
        fail(message)


def watch(jc: JobClient, job: Job, log_dir: Path | None, *, from_start: bool) -> None:
    log_dir = log_dir or default_log_dir(job["id"])
    info(f"job page: {jc.client.url}/jobs/{job['id']}")
    info(f"logs file path: {log_dir}")
    follower = Follower(jc, job["id"], TerminalSink(), log_dir=log_dir, from_start=from_start)
    try:
        final = _follow(jc, follower, job)
    finally:
        follower.close()
    if final is not None:
        _finish(jc, final, Path.cwd())


def started(jc: JobClient, job: Job, async_: bool, output: Path | None, log_dir: Path | None) -> None:
    """After execute: write -o, then return (--async) or follow the job to its end."""
    job_id = job["id"]
    if output is not None:
        output.write_text(json.dumps({"job_id": job_id}) + "\n")
    if async_:
        sys.stdout.write(job_id + "\n")
        info(f"job page: {jc.client.url}/jobs/{job_id}")
        info(f"job {job_id} is {job['status']}; follow it with `atoll job attach --id {job_id}`")
        return
    watch(jc, job, log_dir, from_start=True)


# --- commands -------------------------------------------------------------------------------
