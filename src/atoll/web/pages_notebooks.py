"""The project's Notebook tab: open JupyterLab on a configuration, watch it start, stop it, and
see how long until it is released when idle."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from atoll.domain import access, environments, tenancy
from atoll.domain import notebooks as nbs
from atoll.domain.access import Action
from atoll.errors import DomainError, NotFound
from atoll.states import NOTEBOOK_LIVE, NotebookState
from atoll.store.tables import Community, Project
from atoll.web.context import FormError, WebCtx, WebRoute, redirect, render, signed_in
from atoll.web.project_shell import DEFAULT_CONFIGURATION, configuration_choices, project_page, tab_view

router = APIRouter(route_class=WebRoute, include_in_schema=False)
Ctx = Annotated[WebCtx, Depends(signed_in)]
STATE_CLASS: dict[str, str] = {
    NotebookState.READY: "ok",
    NotebookState.FAILED: "bad",
    NotebookState.STOPPED: "muted",
    NotebookState.NONE: "muted",
}


def notebook_view(ctx: WebCtx, project: Project) -> dict[str, Any]:
    nb = nbs.describe(ctx.db, project, nbs.latest(ctx.db, project.id))
    return {
        "nb": nb,
        "nb_live": nb["state"] in NOTEBOOK_LIVE,
        "nb_class": STATE_CLASS.get(nb["state"], ""),
        "can_use": access.can(ctx.db, ctx.me, Action.PROJECT_USE, project),
    }


@router.get("/projects/{project_id}/notebook")
def notebook_tab(project_id: str, ctx: Ctx) -> Response:
    if ctx.hx_target("notebook-live"):
        project = tenancy.get_project(ctx.db, ctx.me, project_id)
        return render(ctx, "notebook_live.html", p=project, **notebook_view(ctx, project))
    return project_page(ctx, project_id, "notebook")


def _act(ctx: WebCtx, project_id: str, fn: Callable[[], object], notice: str, wake: str) -> Response:
    try:
        fn()
        ctx.commit()
        ctx.request.app.state.services.wake(wake)
    except NotFound:
        raise
    except DomainError as e:
        ctx.rollback()
        return project_page(ctx, project_id, "notebook", notice=f"error: {e.detail}", status=e.status)
    return redirect(ctx, f"/projects/{project_id}/notebook", flash=notice)


@router.post("/projects/{project_id}/notebook/open")
def open_notebook(project_id: str, ctx: Ctx) -> Response:
    box = ctx.request.app.state.secret_box
    configuration = ctx.value("configuration") or None
    return _act(
        ctx,
        project_id,
        lambda: nbs.open_server(ctx.db, ctx.me, project_id, box, configuration),
        "Opening JupyterLab…",
        "notebooks",
    )


@router.post("/projects/{project_id}/notebook/stop")
def stop_notebook(project_id: str, ctx: Ctx) -> Response:
    stop = lambda: nbs.stop_server(ctx.db, ctx.me, project_id)  # noqa: E731
    return _act(ctx, project_id, stop, "Stopping JupyterLab", "workloads")


@tab_view("notebook")
def _notebook_tab(ctx: WebCtx, project: Project, c: Community, error: FormError) -> dict[str, Any]:
    return {
        **notebook_view(ctx, project),
        "configurations": configuration_choices(ctx, c),
        "chosen": project.default_configuration or DEFAULT_CONFIGURATION,
        "environment": environments.of_project(ctx.db, project),
    }
