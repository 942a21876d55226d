"""Following a job as it runs (`atoll job execute`/`attach`, the SDK, the web UI's live logs):
one long-polling call answers with whatever is new in its three logs and its state, and waits
while there is nothing new, so output reaches the follower as it is written, not at its next poll.

The call waits on the services' change board (storage/log_watch.py): the log watch bumps the
job's workload as output lands, the job controller bumps the job as it moves. It never holds a
database transaction (nor a connection) while it waits.
"""

from __future__ import annotations

import hashlib
import json
import time

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from atoll.api.bounds import MAX_LOG_CHUNK, MAX_LOG_OFFSET
from atoll.api.common import act
from atoll.api.deps import Ctx, CtxDep
from atoll.api.routes_jobs import STREAMS, job_out, utf8_complete
from atoll.api.schemas_jobs import JobFollowOut, LogTextOut
from atoll.domain.access import Action
from atoll.domain.jobs import lifecycle
from atoll.states import JOB_TERMINAL
from atoll.storage.log_watch import job_key, logs_key

router = APIRouter(tags=["jobs"])

MAX_FOLLOW_WAIT_S = 25.0  # under the 30 s that proxies commonly allow an idle request


def _state_of(out: JobFollowOut) -> str:
    """A short digest of what a follower shows besides output: status, details, progress."""
    job = out.job
    seen = json.dumps([job.status, job.status_details, job.progress], sort_keys=True, default=str)
    return hashlib.sha256(seen.encode()).hexdigest()[:16]


def _look(ctx: Ctx, job_id: str, offsets: dict[str, int], limit: int) -> tuple[JobFollowOut, list[str]]:
    """The job and its output past ``offsets``, and the board keys that announce a change."""
    try:
        job = lifecycle.get_job(ctx.db, ctx.me, job_id)  # authorizes, every time
        wid = job.workload_id or job.files.system_log
        chunks: list[LogTextOut] = []
        logs = ctx.services.logs
        ended = True
        for stream in STREAMS:
            data, nxt = (b"", offsets[stream]) if not wid else logs.read(wid, stream, offsets[stream], limit)
            keep = utf8_complete(data)
            if keep < len(data):  # a character cut by the limit comes whole with the next chunk
                data, nxt = data[:keep], nxt - (len(data) - keep)
            if data:
                chunks.append(LogTextOut(stream=stream, data=data.decode("utf-8", "replace"), offset=nxt))
                ended = False
        out = JobFollowOut(
            job=job_out(job), chunks=chunks, state="", eof=ended and job.status in JOB_TERMINAL
        )
        out.state = _state_of(out)
        return out, [job_key(job_id), *([logs_key(wid)] if wid else [])]
    finally:
        ctx.db.rollback()  # no transaction (no snapshot, no connection) is held while waiting


@router.get("/jobs/{job_id}/follow", response_model=JobFollowOut, openapi_extra=act(Action.PROJECT_VIEW))
async def follow_job(
    job_id: str,
    ctx: CtxDep,
    stdout: int = Query(0, ge=0, le=MAX_LOG_OFFSET, description="Byte offset already read"),
    stderr: int = Query(0, ge=0, le=MAX_LOG_OFFSET),
    system: int = Query(0, ge=0, le=MAX_LOG_OFFSET),
    state: str = Query("", max_length=64, description="`state` of the previous answer"),
    wait: float = Query(0.0, ge=0.0, le=MAX_FOLLOW_WAIT_S, description="Seconds to wait for news"),
    limit: int = Query(1 << 20, ge=1, le=MAX_LOG_CHUNK, description="Bytes per stream at most"),
) -> JobFollowOut:
    """New output of the job's stdout, stderr and system log past the given offsets, and the job.

    Answers at once when there is new output, when the job's state differs from `state`, or when
    it has ended; otherwise waits up to `wait` seconds for one of those."""
    offsets = {"stdout": stdout, "stderr": stderr, "system": system}
    board = ctx.services.board
    deadline = time.monotonic() + wait
    out, keys = await run_in_threadpool(_look, ctx, job_id, offsets, limit)
    while not (out.chunks or out.eof or out.state != state):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        since = board.versions(keys)  # read before looking: a change after this is not lost
        out, keys = await run_in_threadpool(_look, ctx, job_id, offsets, limit)
        if out.chunks or out.eof or out.state != state:
            break
        await board.wait(since, min(left, board.recheck_s))
    return out
