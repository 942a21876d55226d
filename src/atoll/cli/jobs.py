"""`atoll project job` (and `atoll job`): DataSphere Jobs from your terminal (spec §5.5-§5.7).

`execute` checks config.yaml locally, uploads only what the server lacks, streams the program's
stdout and stderr live, and downloads the outputs into the working directory. The program's
output goes to stdout/stderr as it was written; what this command itself says (job id, log
dir, uploads, status) goes to stderr, so `atoll job execute ... > out.txt` captures the program.
"""

from __future__ import annotations

import itertools
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import quote

import typer

from atoll.cli import resolve
from atoll.cli.job_table import COLUMNS, expires, ts
from atoll.cli.lazy import summary
from atoll.cli.output import (
    Format,
    FormatOpt,
    client,
    emit_list,
    fail,
    print_json,
    print_table,
    success,
    usage,
    warn,
)
from atoll.states import JOB_TERMINAL, JobStatus

if TYPE_CHECKING:
    from atoll.client import Client
    from atoll.jobclient import JobClient

app = typer.Typer(help=summary("job"), no_args_is_help=True)


def _jobs(c: Client) -> JobClient:
    # The job client (and the config checker behind it) only for the commands that use it:
    # `atoll job list` and `get` start without them.
    from atoll.jobclient import JobClient

    return JobClient(c)


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
    from atoll.cli.job_terminal import bars, info, report_upload, started
    from atoll.jobclient import prepare_job

    with prepare_job(config) as prepared, client() as c, _jobs(c) as jc:
        for w in prepared.warnings:
            warn(w)
        for m in prepared.messages:
            info(m)
        p = resolve.project(c, project)
        with bars("uploading") as bar:
            job, uploaded = jc.submit(p["id"], prepared, progress=bar)
        info(f"created job {job['id']} in project {p['name']}")
        report_upload(uploaded)
        job = jc.execute(job["id"])
        prepared.close()
        started(jc, job, async_, output, log_dir)


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
    from atoll.cli.job_terminal import bars, info, report_upload, started

    args = _pairs(arg, "--arg")
    given_vars = _pairs(var, "--var") or {}
    env_vars = _pairs(env_var, "--env-var")
    with client() as c, _jobs(c) as jc:
        source = jc.get(job_id)
        expires = source.get("dataExpiresAt")
        soon = datetime.now(UTC) + timedelta(days=1)
        if expires and datetime.fromisoformat(expires.replace("Z", "+00:00")) < soon:
            warn(f"job {job_id}'s data expires at {ts(expires)}: extend it with `atoll job set-data-ttl`")
        with bars("uploading") as bar:
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
        report_upload(uploaded)
        job = jc.execute(job["id"])
        started(jc, job, async_, output, log_dir)


@app.command()
def attach(
    job_id: JobIdOpt,
    from_start: Annotated[
        bool, typer.Option("--from-start", help="Replay the logs from the beginning")
    ] = False,
    log_dir: LogDirOpt = None,
) -> None:
    """Follow a job again: logs from now on (or --from-start), then its outputs when it ends."""
    from atoll.cli.job_terminal import info, watch

    with client() as c, _jobs(c) as jc:
        job = jc.get(job_id)
        if job["status"] == JobStatus.CREATING:
            fail(f"job {job_id} was never executed (it is CREATING): nothing to attach to")
        if job["status"] in JOB_TERMINAL and not from_start:
            info(f"job {job_id} already finished ({job['status']})")
        watch(jc, job, log_dir, from_start=from_start)


@app.command("list")
def list_(
    project: ProjectOpt,
    fmt: FormatOpt = Format.table,
    limit: Annotated[
        int, typer.Option("--limit", min=0, max=1_000_000, help="The newest N jobs (0: all of them)")
    ] = 100,
) -> None:
    """The project's jobs, newest first."""
    with client() as c:  # plain calls: listing needs no job client (cheap to start)
        p = resolve.project(c, project)
        size = min(limit + 1, 1000) if limit else 1000
        found = c.paginate(f"/projects/{p['id']}/jobs", page_size=size, order="newest")
        jobs = list(itertools.islice(found, limit + 1)) if limit else list(found)
    if limit and len(jobs) > limit:
        jobs = jobs[:limit]
        if fmt is Format.table:
            warn(f"the newest {limit} jobs are shown; --limit N shows more, --limit 0 all of them")
    emit_list(jobs, fmt, COLUMNS, "no jobs")


@app.command()
def get(job_id: JobIdOpt, fmt: FormatOpt = Format.table) -> None:
    """One job, with the same columns as `list` (JSON: every field of the API)."""
    with client() as c:
        job = c.get(f"/jobs/{quote(job_id, safe='')}")
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
    with client() as c, _jobs(c) as jc:
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
    with client() as c, _jobs(c) as jc:
        job = jc.set_data_ttl(job_id, value)
    success(f"Job {job_id}: data expires {'never' if value is None else 'at ' + expires(job)}")


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
    from atoll.cli.job_terminal import bars, info
    from atoll.jobclient import describe_outputs, failure_message

    dest = output_dir or Path.cwd()
    with client() as c, _jobs(c) as jc:
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
            with bars("downloading") as bar:
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
    from atoll.errors import DomainError
    from atoll.jobclient import config_error

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
