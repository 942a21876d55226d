"""DataSphere-compatible jobs (spec §5): create, upload files, execute, logs, cancel, fork, TTL."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from atoll.api.bounds import MAX_LOG_CHUNK, MAX_LOG_OFFSET
from atoll.api.common import PageSize, PageToken, act
from atoll.api.deps import Ctx, CtxDep
from atoll.api.pagination import page
from atoll.api.schemas import Page
from atoll.api.schemas_jobs import (
    DatasetOut,
    DataTtl,
    FileRefIn,
    JobCancel,
    JobCreate,
    JobCreated,
    JobFork,
    JobOut,
    LogChunkOut,
    OutputDatasetOut,
    OutputFile,
)
from atoll.domain import datasets, tenancy
from atoll.domain.access import Action
from atoll.domain.jobs import lifecycle
from atoll.errors import Invalid, NotFound
from atoll.jobspec.archive import MAX_FILE_BYTES
from atoll.states import JOB_TERMINAL
from atoll.storage.log_watch import job_key
from atoll.storage.logs import LogStore
from atoll.store.tables import Dataset, Job, StoredFile

router = APIRouter(tags=["jobs"])
STREAMS = ("stdout", "stderr", "system")


def job_out(job: Job) -> JobOut:
    out = JobOut.model_validate(job)
    out.output_files = [OutputFile.model_validate(o) for o in job.files.outputs]
    out.file_errors = [e.model_dump() for e in job.files.file_errors]
    out.output_datasets = [OutputDatasetOut.model_validate(d) for d in job.files.output_datasets]
    return out


def _refs(items: list[FileRefIn]) -> list[StoredFile]:
    return [StoredFile.model_validate(f, from_attributes=True) for f in items]


def _created(ctx: Ctx, job: Job) -> JobCreated:
    blobs = ctx.services.blobs
    missing = lifecycle.missing_blobs(ctx.db, job.project_id, lifecycle.job_shas(job), blobs.has)
    return ctx.commit(JobCreated(job=job_out(job), missing_files=missing))


@router.post(
    "/projects/{project_id}/jobs",
    response_model=JobCreated,
    status_code=201,
    openapi_extra=act(Action.PROJECT_USE),
)
def create_job(project_id: str, body: JobCreate, ctx: CtxDep) -> JobCreated:
    """Create a job from config.yaml and the hashes of its files; upload the missing ones next."""
    job = lifecycle.create_job(
        ctx.db,
        ctx.me,
        project_id,
        config_yaml=body.config,
        name=body.name,
        desc=body.desc,
        inputs=_refs(body.inputs),
        modules=_refs(body.modules),
        python=body.python.model_dump(exclude_none=True) if body.python else None,
        env_vars=body.env_vars,
        data_ttl_days=body.data_ttl_days,
        served=lifecycle.SERVED | ({"docker"} if ctx.services.runtime.images is not None else set()),
    )
    return _created(ctx, job)


@router.get(
    "/projects/{project_id}/jobs", response_model=Page[JobOut], openapi_extra=act(Action.PROJECT_VIEW)
)
def list_jobs(
    project_id: str,
    ctx: CtxDep,
    page_size: int = PageSize,
    page_token: str | None = PageToken,
    order: str = Query(
        "oldest", max_length=6, pattern="^(oldest|newest)$", description="oldest or newest first"
    ),
) -> Page[JobOut]:
    """The project's jobs, a page at a time: oldest first, or newest first with `order=newest`
    (give the same order with each `pageToken`)."""
    q = lifecycle.list_jobs(ctx.db, ctx.me, project_id)
    rows, nxt = page(ctx.db, q, Job, page_size, page_token, newest_first=order == "newest")
    return Page(items=[job_out(j) for j in rows], next_page_token=nxt)


@router.put("/projects/{project_id}/blobs/{sha256}", status_code=204, openapi_extra=act(Action.PROJECT_USE))
async def upload_blob(project_id: str, sha256: str, request: Request, ctx: CtxDep) -> None:
    """Upload one file's bytes; they must hash to `sha256`. Stored once, shared by the project's jobs."""
    tenancy.get_project(ctx.db, ctx.me, project_id, Action.PROJECT_USE)
    blobs = ctx.services.blobs
    try:
        blobs.path(sha256)
    except ValueError as e:
        raise Invalid(str(e), field="sha256") from None
    fd, tmp = tempfile.mkstemp(dir=blobs.root / "tmp")
    try:
        # Hash while the bytes arrive, then rename into place: one write, nothing held in memory,
        # and the event loop is never blocked by a long hash or copy.
        h = hashlib.sha256()
        n = 0
        with os.fdopen(fd, "wb") as f:
            async for chunk in request.stream():
                n += len(chunk)
                if n > MAX_FILE_BYTES:
                    raise Invalid("each file must be at most 5 GB", field="body")
                h.update(chunk)
                f.write(chunk)
        digest = h.hexdigest()
        if digest != sha256:
            raise Invalid(f"content hashes to {digest}, not {sha256}", field="sha256")
        await run_in_threadpool(blobs.adopt, Path(tmp), digest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    await run_in_threadpool(_record, ctx, project_id, digest, n)


def _record(ctx: Ctx, project_id: str, digest: str, n: int) -> None:
    lifecycle.record_blob(ctx.db, project_id, digest, n)
    ctx.commit(None)


@router.get("/jobs/{job_id}", response_model=JobOut, openapi_extra=act(Action.PROJECT_VIEW))
def get_job(job_id: str, ctx: CtxDep) -> JobOut:
    return job_out(lifecycle.get_job(ctx.db, ctx.me, job_id))


@router.post("/jobs/{job_id}/execute", response_model=JobOut, openapi_extra=act(Action.PROJECT_USE))
def execute_job(job_id: str, ctx: CtxDep) -> JobOut:
    job = lifecycle.execute_job(ctx.db, ctx.me, job_id, ctx.services.blobs.has)
    out = ctx.commit_and_wake(job_out(job), "jobs")  # prepared now, not at the next tick
    ctx.services.board.notify(job_key(job_id))
    return out


@router.post("/jobs/{job_id}/cancel", response_model=JobOut, openapi_extra=act(Action.PROJECT_USE))
def cancel_job(job_id: str, body: JobCancel, ctx: CtxDep) -> JobOut:
    """Cancel; `graceful` uses the config's graceful-shutdown signal and timeout, else SIGKILL."""
    out = ctx.commit_and_wake(
        job_out(lifecycle.cancel_job(ctx.db, ctx.me, job_id, graceful=body.graceful)), "workloads"
    )
    ctx.services.board.notify(job_key(job_id))  # its followers see CANCELLING now
    return out


@router.post(
    "/jobs/{job_id}/fork", response_model=JobCreated, status_code=201, openapi_extra=act(Action.PROJECT_USE)
)
def fork_job(job_id: str, body: JobFork, ctx: CtxDep) -> JobCreated:
    """A new job from this one with overrides (spec §5.7); upload the missing files, then execute it."""
    new_inputs = [
        StoredFile.model_validate(f, from_attributes=True).model_copy(update={"var": var})
        for var, f in (body.vars or {}).items()
    ]
    var_paths = {var: f.path for var, f in (body.vars or {}).items()} | dict(body.output_vars or {})
    overrides = {
        "args": body.args,
        "vars": var_paths or None,
        "env_vars": body.env_vars,
        "name": body.name,
        "desc": body.desc,
        "cloud_instance_types": body.cloud_instance_types,
    }
    job = lifecycle.fork_job(
        ctx.db,
        ctx.me,
        job_id,
        overrides={k: v for k, v in overrides.items() if v is not None},
        new_inputs=new_inputs,
        env_vars=body.env_vars or {},
    )
    return _created(ctx, job)


@router.put("/jobs/{job_id}/data-ttl", response_model=JobOut, openapi_extra=act(Action.PROJECT_USE))
def set_data_ttl(job_id: str, body: DataTtl, ctx: CtxDep) -> JobOut:
    return ctx.commit(job_out(lifecycle.set_data_ttl(ctx.db, ctx.me, job_id, body.days)))


def utf8_complete(data: bytes) -> int:
    """Length of the longest prefix of `data` that does not end inside a UTF-8 character."""
    for back in range(1, min(4, len(data)) + 1):
        b = data[-back]
        if b & 0xC0 != 0x80:  # a lead byte (or ASCII): is its sequence complete?
            need = 1 if b < 0x80 else 2 if b >> 5 == 0b110 else 3 if b >> 4 == 0b1110 else 4
            return len(data) if back >= need else len(data) - back
    return len(data)


@router.get("/jobs/{job_id}/logs", response_model=LogChunkOut, openapi_extra=act(Action.PROJECT_VIEW))
def read_logs(
    job_id: str,
    ctx: CtxDep,
    stream: str = Query("stdout", max_length=16),
    offset: int = Query(0, ge=0, le=MAX_LOG_OFFSET),
    limit: int = Query(1 << 20, ge=1, le=MAX_LOG_CHUNK),
) -> LogChunkOut:
    """A slice of the job's stdout, stderr or system log from a byte offset (attach resumes here)."""
    if stream not in STREAMS:
        raise Invalid(f"stream must be one of {', '.join(STREAMS)}", field="stream")
    job = lifecycle.get_job(ctx.db, ctx.me, job_id)
    wid = job.workload_id or job.files.system_log
    logs: LogStore = ctx.services.logs
    data, nxt = (b"", offset) if not wid or not logs.exists(wid) else logs.read(wid, stream, offset, limit)
    keep = utf8_complete(data)
    if keep < len(data):  # a character cut by the limit: send it whole with the next chunk
        data, nxt = data[:keep], nxt - (len(data) - keep)
    done = job.status in JOB_TERMINAL
    return LogChunkOut(
        stream=stream,
        data=data.decode("utf-8", "replace"),
        offset=nxt,
        eof=done and not data,
        status=job.status,
    )


@router.get("/jobs/{job_id}/files/{sha256}", openapi_extra=act(Action.PROJECT_VIEW))
def download_file(job_id: str, sha256: str, ctx: CtxDep) -> FileResponse:
    """Download one of the job's output files (a directory comes as a zip archive)."""
    job = lifecycle.get_job(ctx.db, ctx.me, job_id)
    if job.data_cleared:
        raise NotFound(f"job {job.id}'s data is cleared")
    out = next((o for o in job.files.outputs if o.sha256 == sha256), None)
    if out is None:
        raise NotFound(f"job {job.id} has no output {sha256!r}")
    path = ctx.services.blobs.path(sha256)
    name = os.path.basename(out.path) + (".zip" if out.is_dir else "")
    return FileResponse(path, filename=name, media_type="application/octet-stream")


# --- datasets (made by jobs' output-datasets, mounted by their datasets) ------------------------


@router.get(
    "/projects/{project_id}/datasets",
    response_model=Page[DatasetOut],
    openapi_extra=act(Action.PROJECT_VIEW),
    tags=["datasets"],
)
def list_datasets(
    project_id: str, ctx: CtxDep, page_size: int = PageSize, page_token: str | None = PageToken
) -> Page[DatasetOut]:
    rows, nxt = page(
        ctx.db, datasets.datasets_query(ctx.db, ctx.me, project_id), Dataset, page_size, page_token
    )
    return Page(items=[DatasetOut.model_validate(d) for d in rows], next_page_token=nxt)


@router.get(
    "/projects/{project_id}/datasets/{dataset}",
    response_model=DatasetOut,
    openapi_extra=act(Action.PROJECT_VIEW),
    tags=["datasets"],
)
def get_dataset(project_id: str, dataset: str, ctx: CtxDep) -> DatasetOut:
    """A dataset by id or by name."""
    return DatasetOut.model_validate(datasets.get_dataset(ctx.db, ctx.me, project_id, dataset))


@router.delete(
    "/projects/{project_id}/datasets/{dataset}",
    status_code=204,
    openapi_extra=act(Action.PROJECT_USE),
    tags=["datasets"],
)
def delete_dataset(project_id: str, dataset: str, ctx: CtxDep) -> None:
    """Delete a dataset and its files (refused while a job that mounts it runs)."""
    gone = datasets.delete_dataset(ctx.db, ctx.me, project_id, dataset)
    ctx.commit(None)
    datasets.remove_files(ctx.services.jobs.datasets_root, gone)
