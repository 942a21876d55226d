"""Project pages: overview, members, settings and limits (spec §1, §3, §7.2)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from atoll.domain import access, catalog, tenancy
from atoll.domain.access import Action
from atoll.domain.errors import DomainError, NotFound
from atoll.domain.notebooks import FALLBACK_CONFIGURATION
from atoll.store.models import Community, Project
from atoll.web import forms, queries
from atoll.web.context import FormError, WebCtx, WebRoute, redirect, render, signed_in
from atoll.web.pages_community import crumbs_for
from atoll.web.pages_members import RENDERERS, members_view

router = APIRouter(route_class=WebRoute, include_in_schema=False)
Ctx = Annotated[WebCtx, Depends(signed_in)]
NO_ERROR = FormError("", None, "")
TABS = [
    ("overview", "Overview"),
    ("notebook", "Notebook"),
    ("jobs", "Jobs"),
    ("deploy", "Deploy"),
    ("models", "Models"),
    ("members", "Members"),
    ("settings", "Settings"),
]
DEFAULT_CONFIGURATION = FALLBACK_CONFIGURATION  # what the project runs on when it names none (spec §3.2)
STALE_LABELS = {"ONE_HOUR": "1 hour", "THREE_HOURS": "3 hours", "NO_TIMEOUT": "No timeout"}
LIMITS = [
    ("balance", "Project balance", "Units left to spend; work stops at 0."),
    ("maxUnitsPerHour", "Units per hour", "A configuration that costs more per hour does not start."),
    ("maxUnitsPerExecution", "Units per execution", "A run (cell, job) that uses more is stopped."),
]


def configuration_choices(ctx: WebCtx, c: Community) -> list[dict[str, Any]]:
    """Every catalogue entry, with whether it runs here and whether the community allows it."""
    inv = ctx.inventory
    out = []
    for cfg in catalog.list_configurations(ctx.db, ctx.me):
        av = catalog.availability(cfg, inv, ctx.settings.pool_overcommit)
        allowed = tenancy.configuration_allowed(c, cfg.name)
        gpu = f", {cfg.gpu_count}× {cfg.gpu_type}" if cfg.gpu_count else ""
        note = "available" if av.available else f"unavailable: {av.reason}"
        if not allowed:
            note = "not allowed in this community"
        out.append(
            {
                "name": cfg.name,
                "label": f"{cfg.name} — {cfg.vcpu:g} vCPU, {cfg.ram_gb:g} GB{gpu} · {note}",
                "allowed": allowed,
                "available": av.available,
                "units_per_hour": cfg.units_per_second * 3600,
            }
        )
    return out


def _limits(project: Project) -> dict[str, int | None]:
    return {
        "balance": project.balance,
        "maxUnitsPerHour": project.max_units_per_hour,
        "maxUnitsPerExecution": project.max_units_per_execution,
    }


def project_page(
    ctx: WebCtx,
    project_id: str,
    tab: str = "overview",
    *,
    notice: str | None = None,
    error: FormError = NO_ERROR,
    new_invite: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    me = ctx.me
    project = tenancy.get_project(ctx.db, me, project_id)
    c = queries.community_of(ctx.db, project)
    if tab not in {k for k, _ in TABS}:
        tab = "overview"
    can_view_limits = access.can(ctx.db, me, Action.PROJECT_VIEW_LIMITS, project)
    values: dict[str, Any] = {
        "p": project,
        "community": c,
        "tab": tab,
        "tabs": TABS,
        "notice": notice,
        "error": error,
        "new_invite": new_invite,
        "base": f"/projects/{project.id}",
        "rank": access.rank_on(ctx.db, me, project).name.title(),
        "timeout": forms.format_duration(project.vm_inactivity_timeout_s),
        "stale_labels": STALE_LABELS,
        "default_configuration": DEFAULT_CONFIGURATION,
        "can_view_limits": can_view_limits,
        "limits": _limits(project) if can_view_limits else {},
    }
    if tab == "members":
        values["mv"] = members_view(ctx, project)
    elif tab == "jobs":
        from atoll.web.pages_jobs import STATUS_CLASS, recent_jobs

        values.update(jobs=recent_jobs(ctx.db, ctx, project), status_class=STATUS_CLASS)
    elif tab in ("deploy", "models"):
        from atoll.web.pages_deploy import deploy_view

        values.update(deploy_view(ctx, project, error))
    elif tab == "notebook":
        from atoll.web.pages_notebooks import notebook_view

        values.update(
            notebook_view(ctx, project),
            configurations=configuration_choices(ctx, c),
            chosen=project.default_configuration or DEFAULT_CONFIGURATION,
        )
    elif tab == "settings":
        values.update(
            can_update=access.can(ctx.db, me, Action.PROJECT_UPDATE, project),
            can_set_limits=access.can(ctx.db, me, Action.PROJECT_SET_LIMITS, project),
            configurations=configuration_choices(ctx, c),
            stale_modes=tenancy.STALE_EXEC_MODES,
            limit_fields=LIMITS,
            labels_text=forms.labels_text(project.labels),
        )
    crumbs = crumbs_for(ctx, c, link_self=access.can(ctx.db, me, Action.COMMUNITY_VIEW, c))
    crumbs.append({"label": project.name, "url": ""})
    template = "project_tabs.html" if ctx.hx_target("tab-area") else "project.html"
    return render(ctx, template, status=status, crumbs=crumbs, **values)


RENDERERS["projects"] = project_page


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
