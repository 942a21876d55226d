"""The project page's shell: its tabs, header and the values every tab shows.

The jobs, deploy, models and notebook tabs belong to their own page modules, which register a
view here (``tab_view``); the shell imports none of them, so they may render the page again after
a form post without an import circle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.responses import Response

from atoll.domain import access, catalog, communities, environments, tenancy
from atoll.domain.access import Action
from atoll.domain.notebooks import FALLBACK_CONFIGURATION
from atoll.store.tables import Community, Project
from atoll.web import forms, queries
from atoll.web.context import FormError, WebCtx, render
from atoll.web.pages_community import crumbs_for
from atoll.web.pages_members import RENDERERS, members_view

TabView = Callable[[WebCtx, Project, Community, FormError], dict[str, Any]]
TAB_VIEWS: dict[str, TabView] = {}


def tab_view(*tabs: str) -> Callable[[TabView], TabView]:
    """Register a page module's view of one or more tabs (its values for the template)."""

    def register(view: TabView) -> TabView:
        for tab in tabs:
            TAB_VIEWS[tab] = view
        return view

    return register


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
    free = catalog.free_now(ctx.db, inv, ctx.settings.pool_overcommit)
    out = []
    for cfg in catalog.list_configurations(ctx.db, ctx.me):
        av = catalog.availability(cfg, inv, ctx.settings.pool_overcommit)
        allowed = communities.configuration_allowed(c, cfg.name)
        gpu = f", {cfg.gpu_count}× {cfg.gpu_type}" if cfg.gpu_count else ""
        note = "available" if av.available else f"unavailable: {av.reason}"
        if av.available and not free.fits(cfg):  # it runs here, but not before others end
            note = free.note()
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
    elif tab in TAB_VIEWS:
        values.update(TAB_VIEWS[tab](ctx, project, c, error))
    elif tab == "settings":
        values.update(
            can_update=access.can(ctx.db, me, Action.PROJECT_UPDATE, project),
            can_set_limits=access.can(ctx.db, me, Action.PROJECT_SET_LIMITS, project),
            configurations=configuration_choices(ctx, c),
            environment_choices=environments.list_environments(ctx.db, me, project.id),
            stale_modes=tenancy.STALE_EXEC_MODES,
            limit_fields=LIMITS,
            labels_text=forms.labels_text(project.labels),
        )
    crumbs = crumbs_for(ctx, c, link_self=access.can(ctx.db, me, Action.COMMUNITY_VIEW, c))
    crumbs.append({"label": project.name, "url": ""})
    template = "project_tabs.html" if ctx.hx_target("tab-area") else "project.html"
    return render(ctx, template, status=status, crumbs=crumbs, **values)


RENDERERS["projects"] = project_page
