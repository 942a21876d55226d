"""A project's JupyterLab server: open, stop, status (spec §3.2, §3.3). The server itself is
reached through the gateway at ``/nb/<project id>/``, not through this API."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy.orm import Session

from atoll.api.common import act
from atoll.api.deps import CtxDep
from atoll.api.schemas_notebooks import (
    IdeLinkCreate,
    IdeLinkOut,
    NotebookExecute,
    NotebookOpen,
    NotebookOperation,
    NotebookOut,
)
from atoll.domain import notebook_runs
from atoll.domain import notebooks as nbs
from atoll.domain.access import Action
from atoll.store.tables import NotebookServer, Project

router = APIRouter(tags=["notebooks"])


def notebook_out(db: Session, project: Project, server: NotebookServer | None) -> NotebookOut:
    return NotebookOut.model_validate(nbs.describe(db, project, server))


@router.get(
    "/projects/{project_id}/notebook", response_model=NotebookOut, openapi_extra=act(Action.PROJECT_VIEW)
)
def get_notebook(project_id: str, ctx: CtxDep) -> NotebookOut:
    """The project's notebook server: state, spawn timeline, time left before idle release."""
    project, server = nbs.get_status(ctx.db, ctx.me, project_id)
    return notebook_out(ctx.db, project, server)


@router.post(
    "/projects/{project_id}/notebook/open",
    response_model=NotebookOut,
    status_code=202,
    openapi_extra=act(Action.PROJECT_USE),
)
def open_notebook(project_id: str, ctx: CtxDep, body: NotebookOpen | None = None) -> NotebookOut:
    """Open the project's JupyterLab (idempotent while it runs); poll GET …/notebook until READY."""
    server = nbs.open_server(ctx.db, ctx.me, project_id, ctx.secret_box, body.configuration if body else None)
    ctx.db.commit()
    ctx.services.wake("notebooks")  # prepare it now, not at the controller's next tick
    project = ctx.db.get(Project, server.project_id)
    assert project is not None
    return notebook_out(ctx.db, project, server)


@router.post(
    "/projects/{project_id}/notebook/ide-link",
    response_model=IdeLinkOut,
    status_code=201,
    openapi_extra=act(Action.PROJECT_USE),
)
def create_ide_link(project_id: str, ctx: CtxDep, body: IdeLinkCreate | None = None) -> IdeLinkOut:
    """A link for an external IDE (VS Code's "Existing Jupyter Server"): the project's JupyterLab
    URL and a token that opens it and nothing else. Needs the community's externalIde feature."""
    days = body.expires_in_days if body is not None else nbs.IDE_LINK_DAYS
    tok, raw = nbs.create_ide_link(ctx.db, ctx.me, project_id, days)
    url = f"{ctx.settings.base_url}{nbs.base_path(project_id)}"
    out = IdeLinkOut(
        url=url, token=raw, url_with_token=f"{url}?token={raw}", token_id=tok.id, expires_at=tok.expires_at
    )
    return ctx.commit(out)


@router.post(
    "/projects/{project_id}/notebook/stop",
    response_model=NotebookOut,
    status_code=202,
    openapi_extra=act(Action.PROJECT_USE),
)
def stop_notebook(project_id: str, ctx: CtxDep) -> NotebookOut:
    """Stop the project's JupyterLab and its kernels (what is saved in the project stays)."""
    project, server = nbs.stop_server(ctx.db, ctx.me, project_id)
    ctx.db.commit()
    ctx.services.wake("workloads")
    return notebook_out(ctx.db, project, server)


@router.post(
    "/projects/{project_id}:execute",
    response_model=NotebookOperation,
    status_code=202,
    openapi_extra=act(Action.PROJECT_USE),
)
def execute_notebook(project_id: str, body: NotebookExecute, ctx: CtxDep) -> NotebookOperation:
    """Run a notebook of the project's storage top to bottom (spec §4.1); poll the operation."""
    controller = ctx.services.notebooks
    run = notebook_runs.execute(
        ctx.db,
        ctx.me,
        project_id,
        notebook_id=body.notebook_id,
        input_variables=body.input_variables,
        output_variable_names=body.output_variable_names,
        configuration=body.configuration,
        notebook_exists=lambda project, path: controller.notebook_exists(project.id, path),
    )
    ctx.db.commit()
    ctx.services.wake("notebooks")
    return NotebookOperation.model_validate(notebook_runs.operation(ctx.db, run))


@router.get(
    "/projects/{project_id}/executions/{execution_id}",
    response_model=NotebookOperation,
    openapi_extra=act(Action.PROJECT_VIEW),
)
def get_execution(project_id: str, execution_id: str, ctx: CtxDep) -> NotebookOperation:
    """A notebook run: ``done``, then ``response.outputVariables`` or ``error.message``."""
    _project, run = notebook_runs.get_run(ctx.db, ctx.me, project_id, execution_id)
    return NotebookOperation.model_validate(notebook_runs.operation(ctx.db, run))
