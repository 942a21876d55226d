"""Project pages: the page itself and its settings and limits forms (spec §1, §3, §7.2); the
page's shell and tabs are web/project_shell.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from atoll.domain import environments, tenancy
from atoll.errors import DomainError, NotFound
from atoll.jobspec.requirements import parse_requirements
from atoll.web import forms
from atoll.web.context import FormError, WebCtx, WebRoute, redirect, signed_in
from atoll.web.project_shell import LIMITS, project_page

router = APIRouter(route_class=WebRoute, include_in_schema=False)
Ctx = Annotated[WebCtx, Depends(signed_in)]


@router.get("/projects/{project_id}")
def project(project_id: str, ctx: Ctx, tab: str = "overview") -> Response:
    return project_page(ctx, project_id, tab)


def _saved(ctx: WebCtx, project_id: str, notice: str) -> Response:
    if ctx.htmx:
        return project_page(ctx, project_id, "settings", notice=notice)
    return redirect(ctx, f"/projects/{project_id}?tab=settings", flash=notice)


@router.post("/projects/{project_id}/settings")
def update_project(project_id: str, ctx: Ctx) -> Response:
    keys = (
        "name",
        "description",
        "labels",
        "settings.defaultConfiguration",
        "settings.defaultEnvironment",
        "settings.vmInactivityTimeout",
        "settings.staleExecTimeoutMode",
    )
    values = {k: ctx.value(k) for k in keys}
    try:
        tenancy.update_project(
            ctx.db,
            ctx.me,
            project_id,
            name=values["name"],
            description=values["description"],
            labels=forms.parse_labels(values["labels"]),
            project_settings={
                "defaultConfiguration": values["settings.defaultConfiguration"] or None,
                "defaultEnvironment": values["settings.defaultEnvironment"] or None,
                "vmInactivityTimeout": values["settings.vmInactivityTimeout"],
                "staleExecTimeoutMode": values["settings.staleExecTimeoutMode"],
            },
        )
        ctx.commit()
    except NotFound:
        raise
    except DomainError as e:
        # Nothing is saved: the whole form is one unit of work.
        ctx.rollback()
        return project_page(
            ctx, project_id, "settings", error=FormError.of("settings", e, values), status=e.status
        )
    return _saved(ctx, project_id, "Project settings saved")


@router.post("/projects/{project_id}/limits")
def set_limits(project_id: str, ctx: Ctx) -> Response:
    values = {f"limits.{key}": ctx.value(f"limits.{key}") for key, _, _ in LIMITS}
    try:
        limits = {key: forms.parse_units(values[f"limits.{key}"], f"limits.{key}") for key, _, _ in LIMITS}
        tenancy.set_limits(ctx.db, ctx.me, project_id, limits, prefix="limits.")
        ctx.commit()
    except NotFound:
        raise
    except DomainError as e:
        ctx.rollback()
        return project_page(
            ctx, project_id, "settings", error=FormError.of("limits", e, values), status=e.status
        )
    return _saved(ctx, project_id, "Limits saved")


# --- a project's environments ----------------------------------------------------------------


@router.post("/projects/{project_id}/environments")
def create_environment(project_id: str, ctx: Ctx) -> Response:
    values = {k: ctx.value(k) for k in ("name", "base", "requirements")}
    try:
        reqs = parse_requirements(values["requirements"], "requirements", field="requirements").requirements
        row = environments.create_environment(
            ctx.db,
            ctx.me,
            project_id,
            name=values["name"].strip(),
            requirements=list(reqs),
            base=values["base"] or None,
            quota=ctx.settings.quota_environments_per_project,
        )
        ctx.commit(wake="environments")
    except NotFound:
        raise
    except DomainError as e:
        ctx.rollback()
        return project_page(
            ctx, project_id, "settings", error=FormError.of("environment", e, values), status=e.status
        )
    return _saved(ctx, project_id, f"Environment {row.name} queued for its build")


@router.post("/projects/{project_id}/environments/{env_id}/delete")
def delete_environment(project_id: str, env_id: str, ctx: Ctx) -> Response:
    try:
        row = environments.get_environment(ctx.db, ctx.me, env_id)
        if row.project_id != project_id:
            raise NotFound(f"no environment {env_id!r} in this project")
        name = row.name
        environments.delete_environment(ctx.db, ctx.me, row)
        ctx.commit()
    except NotFound:
        raise
    except DomainError as e:
        ctx.rollback()
        return project_page(
            ctx, project_id, "settings", error=FormError.of("environment", e), status=e.status
        )
    return _saved(ctx, project_id, f"Environment {name} deleted")
