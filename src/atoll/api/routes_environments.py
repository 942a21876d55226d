"""Environments: the locked package sets workloads run in (built-in ones, for now)."""

from __future__ import annotations

from fastapi import APIRouter, Path

from atoll.api.common import act
from atoll.api.deps import CtxDep
from atoll.api.schemas_environments import EnvironmentOut
from atoll.domain import access
from atoll.domain.access import Action
from atoll.envs import builtins
from atoll.errors import NotFound

router = APIRouter()


def _all(ctx: CtxDep) -> list[EnvironmentOut]:
    access.authorize(ctx.db, ctx.me, Action.CATALOG_VIEW)
    return [
        EnvironmentOut.model_validate({**e, "default": e["name"] == builtins.DEFAULT.name})
        for e in ctx.services.environments.status()
    ]


@router.get(
    "/environments",
    response_model=list[EnvironmentOut],
    openapi_extra=act(Action.CATALOG_VIEW),
    tags=["environments"],
)
def list_environments(ctx: CtxDep) -> list[EnvironmentOut]:
    """The installation's environments, each with its build state on this machine."""
    return _all(ctx)


@router.get(
    "/environments/{name}",
    response_model=EnvironmentOut,
    openapi_extra=act(Action.CATALOG_VIEW),
    tags=["environments"],
)
def get_environment(ctx: CtxDep, name: str = Path(max_length=64)) -> EnvironmentOut:
    for env in _all(ctx):
        if env.name == name:
            return env
    known = ", ".join(builtins.BUILTINS)
    raise NotFound(f"no environment named {name!r} (there are: {known})", field="name")
