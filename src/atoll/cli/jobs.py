"""`atoll project job` (and `atoll job`): DataSphere Jobs from your terminal (spec §5.5-§5.7).

`execute` checks config.yaml locally, uploads only what the server lacks, streams the program's
stdout and stderr live, and downloads the outputs into the working directory. The program's
output goes to stdout/stderr as it was written; what this command itself says (job id, log
dir, uploads, status) goes to stderr, so `atoll job execute ... > out.txt` captures the program.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from atoll.cli import resolve
from atoll.cli.datasets import gb
from atoll.cli.output import (
    Column,
    Format,
    FormatOpt,
    client,
    emit_list,
    err,
    fail,
    print_json,
    print_table,
    success,
    usage,
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
    config_error,
    default_log_dir,
    describe_outputs,
    failure_message,
    prepare_job,
)
from atoll.jobspec import parse_config
from atoll.jobspec.units import human_bytes
from atoll.states import JOB_TERMINAL, JobStatus

app = typer.Typer(
    help="DataSphere Jobs: run programs from your machine on project compute, get the results back.",
    no_args_is_help=True,
)

JobIdOpt = Annotated[str, typer.Option("--id", help="Job id")]
ProjectOpt = Annotated[
    str, typer.Option("-p", "--project", "--project-id", help="Project id, name or COMMUNITY/PROJECT")
]
AsyncOpt = Annotated[bool, typer.Option("--async", help="Return once the job starts; do not wait for it")]
OutputOpt = Annotated[
    Path | None, typer.Option("-o", "--output", help='Write {"job_id": ...} to this file as JSON')
]
LogDirOpt = Annotated[
    Path | None,
    typer.Option("--log-dir", help="Where to write stdout.txt, stderr.txt, system.log, job_progress.jsonl"),
]


# --- output helpers -------------------------------------------------------------------------


def info(message: str) -> None:
    """A line from this command (not from the program) on stderr."""
    err.print(message, markup=False, soft_wrap=True)


def _ts(value: Any) -> str:
    if not value:
        return "-"
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _expires(job: Mapping[str, Any]) -> str:
    if job.get("dataTtlDays") is None:
        return "Never"
    if job.get("dataExpiresAt"):
        return _ts(job["dataExpiresAt"])
    return f"{job['dataTtlDays']} days after it ends"


COLUMNS: list[Column] = [
    ("ID", "id"),
    ("Name", "name"),
    ("Description", "desc"),
    ("Created at", lambda j: _ts(j.get("createdAt"))),
    ("Finished at", lambda j: _ts(j.get("finishedAt"))),
    ("Status", "status"),
    ("Created by", "createdById"),
    ("Data cleared", "dataCleared"),
    ("Data expires at", _expires),
]


@contextlib.contextmanager
def _bars(verb: str) -> Iterator[Transfer]:
    """Rich progress bars on a terminal; one plain line per file otherwise (logs, CI)."""
    if not err.is_terminal:
        seen: set[str] = set()

        def plain(name: str, done: int, total: int) -> None:
            if name not in seen:
                seen.add(name)
                info(f"{verb} {name} ({human_bytes(total)})")

        yield plain
        return
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


def _report_upload(up: Uploaded) -> None:
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
        with _bars("downloading") as bar:
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


def _watch(jc: JobClient, job: Job, log_dir: Path | None, *, from_start: bool) -> None:
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


def _started(jc: JobClient, job: Job, async_: bool, output: Path | None, log_dir: Path | None) -> None:
    """After execute: write -o, then return (--async) or follow the job to its end."""
    job_id = job["id"]
    if output is not None:
        output.write_text(json.dumps({"job_id": job_id}) + "\n")
    if async_:
        sys.stdout.write(job_id + "\n")
        info(f"job page: {jc.client.url}/jobs/{job_id}")
        info(f"job {job_id} is {job['status']}; follow it with `atoll job attach --id {job_id}`")
        return
    _watch(jc, job, log_dir, from_start=True)


# --- commands -------------------------------------------------------------------------------


@app.command()
def execute(
    project: ProjectOpt,
    config: Annotated[Path, typer.Option("-c", "--config", help="The job's config.yaml")],
    async_: AsyncOpt = False,
    output: OutputOpt = None,
    log_dir: LogDirOpt = None,
) -> None:
    """Run a job: check config.yaml, upload what the server lacks, stream logs, download outputs.

    Paths in the config are relative to the working directory, and outputs land there. Ctrl+C
    asks whether to cancel the job (default: no, leave it running and detach).
    """
    with prepare_job(config) as prepared, client() as c, JobClient(c) as jc:
        for w in prepared.warnings:
            warn(w)
        for m in prepared.messages:
            info(m)
        p = resolve.project(c, project)
        with _bars("uploading") as bar:
            job, uploaded = jc.submit(p["id"], prepared, progress=bar)
        info(f"created job {job['id']} in project {p['name']}")
        _report_upload(uploaded)
        job = jc.execute(job["id"])
        prepared.close()
        _started(jc, job, async_, output, log_dir)


def _pairs(values: list[str] | None, option: str) -> dict[str, str] | None:
    if not values:
        return None
    out: dict[str, str] = {}
    for v in values:
        key, sep, value = v.partition("=")
        if not sep or not key:
            usage(f"{option} takes NAME=VALUE (got {v!r})")
        out[key] = value
    return out


@app.command()
def fork(
    job_id: JobIdOpt,
    arg: Annotated[list[str] | None, typer.Option("--arg", help="NAME=VALUE of an existing arg")] = None,
    var: Annotated[
        list[str] | None,
        typer.Option("--var", help="NAME=PATH: a new file for an input, a path for an output"),
    ] = None,
    env_var: Annotated[
        list[str] | None, typer.Option("--env-var", help="NAME=VALUE; replaces the source's env vars")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="The new job's name")] = None,
    desc: Annotated[str | None, typer.Option("--desc", help="The new job's description")] = None,
    cloud_instance_type: Annotated[
        list[str] | None,
        typer.Option("--cloud-instance-type", help="Configuration to run on; repeat, in order of preference"),
    ] = None,
    async_: AsyncOpt = False,
    output: OutputOpt = None,
    log_dir: LogDirOpt = None,
) -> None:
    """Re-run a job with overrides (args, input files, output paths, env vars, configurations)."""
    args = _pairs(arg, "--arg")
    given_vars = _pairs(var, "--var") or {}
    env_vars = _pairs(env_var, "--env-var")
    with client() as c, JobClient(c) as jc:
        source = jc.get(job_id)
        expires = source.get("dataExpiresAt")
        soon = datetime.now(UTC) + timedelta(days=1)
        if expires and datetime.fromisoformat(expires.replace("Z", "+00:00")) < soon:
            warn(f"job {job_id}'s data expires at {_ts(expires)}: extend it with `atoll job set-data-ttl`")
        with _bars("uploading") as bar:
            job, uploaded = jc.fork_job(
                job_id,
                args=args,
                vars=given_vars,
                env_vars=env_vars,
                name=name,
                desc=desc,
                cloud_instance_types=cloud_instance_type,
                progress=bar,
            )
        info(f"created job {job['id']} (a fork of {job_id})")
        _report_upload(uploaded)
        job = jc.execute(job["id"])
        _started(jc, job, async_, output, log_dir)


@app.command()
def attach(
    job_id: JobIdOpt,
    from_start: Annotated[
        bool, typer.Option("--from-start", help="Replay the logs from the beginning")
    ] = False,
    log_dir: LogDirOpt = None,
) -> None:
    """Follow a job again: logs from now on (or --from-start), then its outputs when it ends."""
    with client() as c, JobClient(c) as jc:
        job = jc.get(job_id)
        if job["status"] == JobStatus.CREATING:
            fail(f"job {job_id} was never executed (it is CREATING): nothing to attach to")
        if job["status"] in JOB_TERMINAL and not from_start:
            info(f"job {job_id} already finished ({job['status']})")
        _watch(jc, job, log_dir, from_start=from_start)


@app.command("list")
def list_(project: ProjectOpt, fmt: FormatOpt = Format.table) -> None:
    """The project's jobs, newest first."""
    with client() as c, JobClient(c) as jc:
        p = resolve.project(c, project)
        jobs = sorted(jc.list_jobs(p["id"]), key=lambda j: j.get("createdAt") or "", reverse=True)
    emit_list(jobs, fmt, COLUMNS, "no jobs")


@app.command()
def get(job_id: JobIdOpt, fmt: FormatOpt = Format.table) -> None:
    """One job, with the same columns as `list` (JSON: every field of the API)."""
    with client() as c, JobClient(c) as jc:
        job = jc.get(job_id)
    if fmt is Format.json:
        print_json(job)
    else:
        print_table([job], COLUMNS)


@app.command()
def cancel(
    job_id: JobIdOpt,
    graceful: Annotated[
        bool, typer.Option("-g", "--graceful", help="Use the config's graceful-shutdown signal and timeout")
    ] = False,
) -> None:
    """Cancel a job: SIGKILL, or with --graceful the signal and timeout of its graceful-shutdown."""
    with client() as c, JobClient(c) as jc:
        job = jc.cancel(job_id, graceful=graceful)
    success(f"Cancelling job {job_id}: {job['status']}")


@app.command("set-data-ttl")
def set_data_ttl(
    job_id: JobIdOpt,
    days: Annotated[
        str, typer.Option("--days", help="Days to keep the job's data after it ends, or infinity")
    ],
) -> None:
    """How long the job's data (inputs, outputs, logs) is kept after it ends."""
    if days.strip().lower() in ("infinity", "inf", "never"):
        value: int | None = None
    else:
        try:
            value = int(days)
        except ValueError:
            usage(f"--days takes a whole number of days or infinity (got {days!r})")
        if value < 1:
            usage(f"--days must be at least 1, or infinity (got {value})")
    with client() as c, JobClient(c) as jc:
        job = jc.set_data_ttl(job_id, value)
    success(f"Job {job_id}: data expires {'never' if value is None else 'at ' + _expires(job)}")


@app.command("download-files")
def download_files(
    job_id: JobIdOpt,
    with_logs: Annotated[
        bool, typer.Option("--with-logs", help="Also stdout.txt, stderr.txt and system.log")
    ] = False,
    output_dir: Annotated[
        Path | None, typer.Option("--output-dir", help="Where to put them (default: the working directory)")
    ] = None,
) -> None:
    """Download a finished job's outputs (and logs). Nothing is downloaded while it runs."""
    dest = output_dir or Path.cwd()
    with client() as c, JobClient(c) as jc:
        job = jc.get(job_id)
        if job["status"] not in JOB_TERMINAL:
            warn(
                f"job {job_id} is still running ({job['status']}): nothing downloaded; try again when it ends"
            )
            return
        message = failure_message(job)
        if message:
            warn(message)
        if job.get("dataCleared"):
            fail(f"job {job_id}'s data is cleared: there is nothing to download")
        paths: list[Path] = []
        if job.get("outputFiles"):
            with _bars("downloading") as bar:
                paths = jc.download_outputs(job, dest, bar)
        if with_logs:
            paths += jc.download_logs(job_id, dest)
    info("downloaded: " + (", ".join(describe_outputs(paths, dest)) or "nothing (the job has no outputs)"))


def generate_requirements(
    files: Annotated[list[Path], typer.Argument(help="Root modules: Python files or dotted module names")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Where to write them ('-' for standard output)")
    ] = Path("requirements.txt"),
) -> None:
    """Write the pinned requirements that the given root modules import (as env.python: auto finds them)."""
    from atoll.envs.detect import generate_requirements as detect

    try:
        requirements = detect(files, Path.cwd())
    except DomainError as e:
        raise config_error(e, "generate-requirements") from None
    text = "".join(f"{r}\n" for r in requirements)
    if str(output) == "-":
        sys.stdout.write(text)
        return
    output.write_text(text)
    success(f"Wrote {len(requirements)} requirement(s) to {output}")
