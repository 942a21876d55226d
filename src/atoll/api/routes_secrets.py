"""Project secrets (spec §4.5): write-only values, names visible to project members."""

from __future__ import annotations

from fastapi import APIRouter

from atoll.api.common import act
from atoll.api.deps import CtxDep
from atoll.api.schemas_secrets import SecretCreate, SecretOut, SecretUpdate
from atoll.domain import secrets
from atoll.domain.access import Action

router = APIRouter(tags=["secrets"])


def _out(sec: object) -> SecretOut:
    return SecretOut.model_validate(sec)


@router.get(
    "/projects/{project_id}/secrets", response_model=list[SecretOut], openapi_extra=act(Action.PROJECT_VIEW)
)
def list_secrets(project_id: str, ctx: CtxDep) -> list[SecretOut]:
    return [_out(x) for x in secrets.list_secrets(ctx.db, ctx.me, project_id)]


@router.post(
    "/projects/{project_id}/secrets",
    response_model=SecretOut,
    status_code=201,
    openapi_extra=act(Action.PROJECT_USE),
)
def create_secret(project_id: str, body: SecretCreate, ctx: CtxDep) -> SecretOut:
    sec = secrets.create_secret(ctx.db, ctx.me, ctx.secret_box, project_id, name=body.name, value=body.value)
    return ctx.commit(_out(sec))


@router.get(
    "/projects/{project_id}/secrets/{secret}",
    response_model=SecretOut,
    openapi_extra=act(Action.PROJECT_VIEW),
)
def get_secret(project_id: str, secret: str, ctx: CtxDep) -> SecretOut:
    return _out(secrets.get_secret(ctx.db, ctx.me, project_id, secret))


@router.patch(
    "/projects/{project_id}/secrets/{secret}",
    response_model=SecretOut,
    openapi_extra=act(Action.PROJECT_USE),
)
def update_secret(project_id: str, secret: str, body: SecretUpdate, ctx: CtxDep) -> SecretOut:
    sec = secrets.update_secret(
        ctx.db, ctx.me, ctx.secret_box, project_id, secret, name=body.name, value=body.value
    )
    return ctx.commit(_out(sec))


@router.delete(
    "/projects/{project_id}/secrets/{secret}", status_code=204, openapi_extra=act(Action.PROJECT_USE)
)
def delete_secret(project_id: str, secret: str, ctx: CtxDep) -> None:
    secrets.delete_secret(ctx.db, ctx.me, project_id, secret)
    ctx.commit(None)
