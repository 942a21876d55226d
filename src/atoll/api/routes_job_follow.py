"""Following a job as it runs (`atoll job execute`/`attach`, the SDK, the web UI's live logs):
one long-polling call (`follow`) answers with whatever is new in its three logs and its state, and
waits while there is nothing new, so output reaches the follower as it is written, not at its next
poll; or one stream of server-sent events (`events`) carries the same answers for the whole run.

The call waits on the services' change board (storage/log_watch.py): the log watch bumps the
job's workload as output lands, the job controller bumps the job as it moves. It never holds a
database transaction (nor a connection) while it waits.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from atoll.api.bounds import MAX_LOG_CHUNK, MAX_LOG_OFFSET
from atoll.api.common import act
from atoll.api.deps import Ctx, WaitingCtxDep
from atoll.api.routes_jobs import STREAMS, job_out, utf8_complete
from atoll.api.schemas_jobs import JobFollowOut, JobOut, LogTextOut
from atoll.domain.access import Action
from atoll.domain.jobs import lifecycle
from atoll.errors import DomainError, NotFound
from atoll.states import JOB_TERMINAL
from atoll.storage.log_watch import job_key, logs_key
from atoll.storage.logs import LogStore
from atoll.store.db import Database

router = APIRouter(tags=["jobs"])

MAX_FOLLOW_WAIT_S = 25.0  # under the 30 s that proxies commonly allow an idle request


def _state_of(out: JobFollowOut) -> str:
    """A short digest of what a follower shows besides output: status, details, progress."""
    job = out.job
    seen = json.dumps([job.status, job.status_details, job.progress], sort_keys=True, default=str)
    return hashlib.sha256(seen.encode()).hexdigest()[:16]


def _job(ctx: Ctx, job_id: str) -> tuple[JobOut, str | None]:
    """The job as its followers see it (authorized on every call), and the id of its logs."""
    try:
        job = lifecycle.get_job(ctx.db, ctx.me, job_id)
        return job_out(job), job.workload_id or job.files.system_log
    finally:
        ctx.db.rollback()  # no transaction (no snapshot, no connection) is held while waiting


class _Snapshots:
    """The job as of a version of its board key, read once for all its followers: when it moves,
    a hundred followers of one job make one database read, not a hundred. Each follower was
    authorized when it began (and is again every REAUTHORIZE_S while it follows)."""

    MAX = 10_000

    def __init__(self) -> None:
        self._cache: dict[str, tuple[int, asyncio.Future[tuple[JobOut, str | None]]]] = {}

    async def get(self, database: Database, job_id: str, version: int) -> tuple[JobOut, str | None]:
        hit = self._cache.get(job_id)
        failed = hit is not None and hit[1].done() and (hit[1].cancelled() or hit[1].exception() is not None)
        if hit is None or hit[0] < version or failed:
            task = asyncio.ensure_future(run_in_threadpool(_read, database, job_id))
            self._cache[job_id] = hit = (version, task)
            while len(self._cache) > self.MAX:
                del self._cache[next(iter(self._cache))]
        return await asyncio.shield(hit[1])


def _read(database: Database, job_id: str) -> tuple[JobOut, str | None]:
    with database.session() as s:
        job = lifecycle.job_for_followers(s, job_id)
        if job is None:
            raise NotFound(f"job {job_id!r} not found")
        return job_out(job), job.workload_id or job.files.system_log


def _snapshots(ctx: Ctx) -> _Snapshots:
    """This app's cache (one per app: its futures belong to its event loop)."""
    state = ctx.request.app.state
    if not hasattr(state, "job_snapshots"):
        state.job_snapshots = _Snapshots()
    found: _Snapshots = state.job_snapshots
    return found


REAUTHORIZE_S = 60.0  # a follower who lost access to the project stops getting news within this


def _output(logs: LogStore, wid: str | None, offsets: dict[str, int], limit: int) -> list[LogTextOut]:
    """What the job's logs hold past ``offsets`` (whole UTF-8 characters only)."""
    chunks: list[LogTextOut] = []
    if not wid:
        return chunks
    for stream in STREAMS:
        data, nxt = logs.read(wid, stream, offsets[stream], limit)
        keep = utf8_complete(data)
        if keep < len(data):  # a character cut by the limit comes whole with the next chunk
            data, nxt = data[:keep], nxt - (len(data) - keep)
        if data:
            chunks.append(LogTextOut(stream=stream, data=data.decode("utf-8", "replace"), offset=nxt))
    return chunks


def _answer(job: JobOut, chunks: list[LogTextOut]) -> JobFollowOut:
    out = JobFollowOut(job=job, chunks=chunks, state="", eof=not chunks and job.status in JOB_TERMINAL)
    out.state = _state_of(out)
    return out


def _offsets(
    stdout: int = Query(0, ge=0, le=MAX_LOG_OFFSET, description="Bytes of stdout already read"),
    stderr: int = Query(0, ge=0, le=MAX_LOG_OFFSET, description="Bytes of stderr already read"),
    system: int = Query(0, ge=0, le=MAX_LOG_OFFSET, description="Bytes of the system log already read"),
) -> dict[str, int]:
    return {"stdout": stdout, "stderr": stderr, "system": system}


Offsets = Annotated[dict[str, int], Depends(_offsets)]


@router.get("/jobs/{job_id}/follow", response_model=JobFollowOut, openapi_extra=act(Action.PROJECT_VIEW))
async def follow_job(
    job_id: str,
    ctx: WaitingCtxDep,
    offsets: Offsets,
    state: str = Query("", max_length=64, description="`state` of the previous answer"),
    wait: float = Query(0.0, ge=0.0, le=MAX_FOLLOW_WAIT_S, description="Seconds to wait for news"),
    limit: int = Query(1 << 20, ge=1, le=MAX_LOG_CHUNK, description="Bytes per stream at most"),
) -> JobFollowOut:
    """New output of the job's stdout, stderr and system log past the given offsets, and the job.

    Answers at once when there is new output, when the job's state differs from `state`, or when
    it has ended; otherwise waits up to `wait` seconds for one of those."""
    board, logs, database = ctx.services.board, ctx.services.logs, ctx.request.app.state.db
    deadline = time.monotonic() + wait
    job, wid = await run_in_threadpool(_job, ctx, job_id)
    out = _answer(job, _output(logs, wid, offsets, limit))
    if out.chunks or out.eof or out.state != state or wait <= 0:
        return out
    keys = [job_key(job_id), *([logs_key(wid)] if wid else [])]
    since = board.versions(keys)
    # Looked at again after taking the versions: a change in between is not lost.
    job, wid = await run_in_threadpool(_job, ctx, job_id)
    while True:
        out = _answer(job, _output(logs, wid, offsets, limit))
        left = deadline - time.monotonic()
        if out.chunks or out.eof or out.state != state or left <= 0:
            return out
        await board.wait(since, min(left, board.recheck_s))
        moved = board.versions(keys)
        if moved[keys[0]] != since[keys[0]] or wid is None:  # the job itself moved: read it
            job, wid = await _snapshots(ctx).get(database, job_id, moved[keys[0]])
            keys = [job_key(job_id), *([logs_key(wid)] if wid else [])]
            moved = board.versions(keys) | moved
        since = moved


MAX_STREAM_S = 3600.0  # a stream ends after an hour: the client reconnects from its last offsets
KEEP_ALIVE_S = 15.0  # a comment line this often keeps idle proxies from closing the stream


@router.get(
    "/jobs/{job_id}/events",
    openapi_extra=act(Action.PROJECT_VIEW),
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "`news` events"}},
)
async def job_events(
    job_id: str,
    ctx: WaitingCtxDep,
    offsets: Offsets,
    duration: float = Query(MAX_STREAM_S, ge=0.0, le=MAX_STREAM_S, description="Seconds the stream lasts"),
    limit: int = Query(1 << 20, ge=1, le=MAX_LOG_CHUNK, description="Bytes per stream per event at most"),
) -> StreamingResponse:
    """The job as server-sent events: a `news` event (the same JSON as `follow`) whenever output
    is written or the job moves, the first one at once; the stream ends after the event with
    `eof`, or after `duration` seconds (then reconnect with the last event's offsets).

    One request for the whole run: what a page or a dashboard following many jobs should use."""
    board, logs, database = ctx.services.board, ctx.services.logs, ctx.request.app.state.db
    read_at = board.versions([job_key(job_id)])[job_key(job_id)]  # before the read: nothing is lost
    job, wid = await run_in_threadpool(_job, ctx, job_id)  # a 404 or 403 before the stream starts
    snapshots = _snapshots(ctx)

    async def events() -> AsyncIterator[str]:
        nonlocal job, wid
        now = time.monotonic()
        end, authorized = now + duration, now
        state, job_seen, quiet_since = "", read_at, now
        while True:
            if time.monotonic() - authorized >= REAUTHORIZE_S:
                try:  # still a member of the project? (the snapshots below are shared)
                    await run_in_threadpool(_job, ctx, job_id)
                except DomainError:
                    return
                authorized = time.monotonic()
            keys = [job_key(job_id), *([logs_key(wid)] if wid else [])]
            since = board.versions(keys)
            if since[keys[0]] != job_seen:
                try:
                    job, wid = await snapshots.get(database, job_id, since[keys[0]])
                except DomainError:  # deleted meanwhile
                    return
                job_seen = since[keys[0]]
            out = _answer(job, _output(logs, wid, offsets, limit))
            if out.chunks or out.eof or out.state != state:
                for chunk in out.chunks:
                    offsets[chunk.stream] = chunk.offset
                state, quiet_since = out.state, time.monotonic()
                yield f"event: news\ndata: {out.model_dump_json(by_alias=True)}\n\n"
                if out.eof or time.monotonic() >= end:
                    return  # the end, or the stream's time is up (news after it: the next stream)
                continue  # there may be more than `limit` was: read again before waiting
            left = end - time.monotonic()
            if left <= 0:
                return
            if time.monotonic() - quiet_since >= KEEP_ALIVE_S:
                quiet_since = time.monotonic()
                yield ": still following\n\n"
            await board.wait(since, min(left, board.recheck_s, KEEP_ALIVE_S))

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy may hold events back
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)
