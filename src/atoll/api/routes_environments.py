"""Environments: the built-in ones every project shares and projects' own (issue 17)."""

from __future__ import annotations

from fastapi import APIRouter, Path, Query, Response

from atoll.api.bounds import MAX_ID
from atoll.api.common import act
from atoll.api.deps import CtxDep
from atoll.api.schemas_environments import EnvironmentCreate, EnvironmentLog, EnvironmentOut
from atoll.domain import environments
from atoll.domain.access import Action
from atoll.store.tables import EnvironmentRow

router = APIRouter()
ProjectQuery = Query(None, alias="projectId", max_length=MAX_ID, description="Also this project's own")


def environment_out(row: EnvironmentRow) -> EnvironmentOut:
    return EnvironmentOut(
        id=row.id,
        name=row.name,
        title=row.title or row.name,
        description=row.description,
        built_in=row.project_id is None,
        project_id=row.project_id,
        base=row.base,
        python_version=row.python_version,
        requirements=list(row.requirements),
        packages_locked=len(row.resolved),
        status=row.status,
        detail=row.detail,
        packages_installed=row.packages,
        size_bytes=row.size_bytes,
        build_seconds=row.build_seconds,
        started_at=row.started_at,
        built_at=row.built_at,
        key=row.key,
        default=row.is_default,
        created_at=row.created_at,
    )


@router.get(
    "/environments",
    response_model=list[EnvironmentOut],
    openapi_extra=act(Action.CATALOG_VIEW),
    tags=["environments"],
)
def list_environments(ctx: CtxDep, project_id: str | None = ProjectQuery) -> list[EnvironmentOut]:
    """The built-in environments with their build state here, and a project's own with ``projectId``."""
    return [environment_out(r) for r in environments.list_environments(ctx.db, ctx.me, project_id)]


@router.get(
    "/environments/{ref}",
    response_model=EnvironmentOut,
    openapi_extra=act(Action.CATALOG_VIEW),
    tags=["environments"],
)
def get_environment(
    ctx: CtxDep, ref: str = Path(max_length=MAX_ID), project_id: str | None = ProjectQuery
) -> EnvironmentOut:
    """One environment, by id or by name (a project's own first with ``projectId``)."""
    return environment_out(environments.get_environment(ctx.db, ctx.me, ref, project_id))


@router.get(
    "/environments/{ref}/log",
    response_model=EnvironmentLog,
    openapi_extra=act(Action.CATALOG_VIEW),
    tags=["environments"],
)
def environment_log(
    ctx: CtxDep, ref: str = Path(max_length=MAX_ID), project_id: str | None = ProjectQuery
) -> EnvironmentLog:
    """The last build's output: uv's, in full, when it failed."""
    row = environments.get_environment(ctx.db, ctx.me, ref, project_id)
    return EnvironmentLog(id=row.id, status=row.status, log=row.log)


@router.post(
    "/projects/{project_id}/environments",
    response_model=EnvironmentOut,
    status_code=201,
    openapi_extra=act(Action.PROJECT_UPDATE),
    tags=["environments"],
)
def create_environment(project_id: str, body: EnvironmentCreate, ctx: CtxDep) -> EnvironmentOut:
    """A project environment from requirements, alone or on top of a built-in one; built next."""
    row = environments.create_environment(
        ctx.db,
        ctx.me,
        project_id,
        name=body.name,
        requirements=list(body.requirements),
        base=body.base,
        python_version=body.python_version,
        description=body.description,
        quota=ctx.settings.quota_environments_per_project,
    )
    return ctx.commit_and_wake(environment_out(row), "environments")


@router.post(
    "/environments/{env_id}:build",
    response_model=EnvironmentOut,
    status_code=202,
    openapi_extra=act(Action.PROJECT_UPDATE),
    tags=["environments"],
)
def build_environment(ctx: CtxDep, env_id: str = Path(max_length=MAX_ID)) -> EnvironmentOut:
    """Build a failed environment again (a built or building one: nothing to do)."""
    row = environments.get_environment(ctx.db, ctx.me, env_id)
    return ctx.commit_and_wake(environment_out(environments.rebuild(ctx.db, ctx.me, row)), "environments")


@router.delete(
    "/environments/{env_id}",
    status_code=204,
    openapi_extra=act(Action.PROJECT_UPDATE),
    tags=["environments"],
)
def delete_environment(ctx: CtxDep, env_id: str = Path(max_length=MAX_ID)) -> Response:
    row = environments.get_environment(ctx.db, ctx.me, env_id)
    environments.delete_environment(ctx.db, ctx.me, row)
    ctx.db.commit()
    return Response(status_code=204)
