"""Jobs in the web UI: the project's run history and a job page with status, outputs and logs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from sqlalchemy.orm import Session

from atoll.domain import access, tenancy
from atoll.domain.access import Action
from atoll.domain.jobs import lifecycle
from atoll.states import JOB_TERMINAL, JobStatus
from atoll.storage.log_watch import job_key
from atoll.store.tables import Community, Job, Project
from atoll.web import queries
from atoll.web.context import FormError, WebCtx, WebRoute, render, signed_in
from atoll.web.pages_community import crumbs_for
from atoll.web.project_shell import tab_view

router = APIRouter(route_class=WebRoute, include_in_schema=False)
Ctx = Annotated[WebCtx, Depends(signed_in)]
LOG_TAIL = 64 * 1024
STATUS_CLASS: dict[str, str] = {JobStatus.SUCCESS: "ok", JobStatus.ERROR: "bad", JobStatus.CANCELLED: "muted"}


def recent_jobs(db: Session, ctx: WebCtx, project: Project, limit: int = 50) -> list[Job]:
    q = lifecycle.list_jobs(db, ctx.me, project.id).order_by(Job.created_at.desc()).limit(limit)
    return list(db.scalars(q))


def _tail(ctx: WebCtx, job: Job, stream: str) -> str:
    wid = job.workload_id or job.files.system_log
    logs = ctx.request.app.state.services.logs
    if not wid or not logs.exists(wid):
        return ""
    size = logs.size(wid, stream)
    data, _ = logs.read(wid, stream, max(size - LOG_TAIL, 0), LOG_TAIL)
    return str(data.decode("utf-8", "replace"))


def _sizes(ctx: WebCtx, job: Job) -> dict[str, int]:
    """Where each log ends now: the page's follower (static/job_follow.js) waits for more."""
    wid = job.workload_id or job.files.system_log
    logs = ctx.request.app.state.services.logs
    if not wid or not logs.exists(wid):
        return dict.fromkeys(("stdout", "stderr", "system"), 0)
    return {s: logs.size(wid, s) for s in ("stdout", "stderr", "system")}


def job_view(ctx: WebCtx, job: Job) -> dict[str, Any]:
    return {
        "offsets": _sizes(ctx, job),
        "job": job,
        "terminal": job.status in JOB_TERMINAL,
        "status_class": STATUS_CLASS.get(job.status, ""),
        "outputs": job.files.outputs,
        "file_errors": job.files.file_errors,
        "datasets": job.files.output_datasets,
        "logs": {s: _tail(ctx, job, s) for s in ("stdout", "stderr", "system")},
        "can_cancel": job.status not in JOB_TERMINAL
        and access.can(
            ctx.db, ctx.me, Action.PROJECT_USE, tenancy.get_project(ctx.db, ctx.me, job.project_id)
        ),
    }


@router.get("/jobs/{job_id}")
def job_page(job_id: str, ctx: Ctx) -> Response:
    job = lifecycle.get_job(ctx.db, ctx.me, job_id)
    values = job_view(ctx, job)
    if ctx.hx_target("job-live"):
        return render(ctx, "job_live.html", **values)
    project = tenancy.get_project(ctx.db, ctx.me, job.project_id)
    c = queries.community_of(ctx.db, project)
    crumbs = crumbs_for(ctx, c, link_self=access.can(ctx.db, ctx.me, Action.COMMUNITY_VIEW, c))
    crumbs.append({"label": project.name, "url": f"/projects/{project.id}?tab=jobs"})
    crumbs.append({"label": job.name or job.id, "url": ""})
    return render(ctx, "job.html", crumbs=crumbs, project=project, **values)


@router.post("/jobs/{job_id}/cancel")
def cancel(job_id: str, ctx: Ctx) -> Response:
    lifecycle.cancel_job(ctx.db, ctx.me, job_id, graceful=True, reason="cancelled from the web UI")
    ctx.commit()
    services = ctx.request.app.state.services
    services.wake("workloads")
    services.board.notify(job_key(job_id))  # its followers see CANCELLING now
    return job_page(job_id, ctx)


@tab_view("jobs")
def _jobs_tab(ctx: WebCtx, project: Project, c: Community, error: FormError) -> dict[str, Any]:
    return {"jobs": recent_jobs(ctx.db, ctx, project), "status_class": STATUS_CLASS}
