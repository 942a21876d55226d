"""Community pages: projects, members, settings (general, billing account, restrictions)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from atoll.domain import access, catalog, communities, tenancy
from atoll.domain.access import Action
from atoll.errors import DomainError, NotFound
from atoll.store.tables import BillingAccount, Community
from atoll.web import forms, queries
from atoll.web.context import FormError, WebCtx, WebRoute, redirect, render, signed_in
from atoll.web.pages_members import RENDERERS, members_view

router = APIRouter(route_class=WebRoute, include_in_schema=False)
Ctx = Annotated[WebCtx, Depends(signed_in)]
NO_ERROR = FormError("", None, "")
TABS = [("projects", "Projects"), ("members", "Members"), ("settings", "Settings")]
FEATURE_LABELS = {
    "jobs": "Jobs",
    "nodesAndAliases": "Nodes and aliases",
    "diskResize": "Changing the project disk size",
    "datasets": "Datasets",
    "externalIde": "External IDE",
    "dataprocTemplates": "Data Proc templates",
}


def crumbs_for(ctx: WebCtx, c: Community, *, link_self: bool) -> list[dict[str, str]]:
    """org → community; each a link only where the caller may open it."""
    org = queries.organization(ctx.db, c.organization_id)
    crumbs = []
    if org is not None:
        url = f"/orgs/{org.id}" if access.can(ctx.db, ctx.me, Action.ORG_VIEW, org) else ""
        crumbs.append({"label": org.name, "url": url})
    crumbs.append({"label": c.name, "url": f"/communities/{c.id}" if link_self else ""})
    return crumbs


def _settings_view(ctx: WebCtx, c: Community) -> dict[str, Any]:
    me = ctx.me
    restrictions = communities.restrictions_of(c)
    allowed = restrictions["allowedConfigurations"]
    inv = ctx.inventory
    configs = [
        {
            "name": cfg.name,
            "allowed": allowed is None or cfg.name in allowed,
            "summary": _summary(cfg),
            "available": catalog.availability(cfg, inv, ctx.settings.pool_overcommit),
        }
        for cfg in catalog.list_configurations(ctx.db, me)
    ]
    can_link = access.can(ctx.db, me, Action.COMMUNITY_LINK_BILLING, c)
    accounts: list[BillingAccount] = []
    if can_link:
        accounts = [
            ba
            for ba in queries.billing_accounts(ctx.db, me, c.organization_id)
            if ba.active and access.can(ctx.db, me, Action.BILLING_ACCOUNT_USE, ba)
        ]
    current_ba = ""
    if c.billing_account_id:
        current_ba = queries.names(ctx.db, BillingAccount, {c.billing_account_id}).get(
            c.billing_account_id, ""
        )
    return {
        "can_update": access.can(ctx.db, me, Action.COMMUNITY_UPDATE, c),
        "can_link": can_link,
        "can_restrict": access.can(ctx.db, me, Action.COMMUNITY_SET_RESTRICTIONS, c),
        "accounts": accounts,
        "current_ba": current_ba,
        "configs": configs,
        "allow_all": allowed is None,
        "features": [(k, FEATURE_LABELS.get(k, k), on) for k, on in restrictions["features"].items()],
        "labels_text": forms.labels_text(c.labels),
    }


def _summary(cfg: Any) -> str:
    gpu = f", {cfg.gpu_count}× {cfg.gpu_type}" if cfg.gpu_count else ""
    return f"{cfg.vcpu:g} vCPU, {cfg.ram_gb:g} GB{gpu}"


def community_page(
    ctx: WebCtx,
    community_id: str,
    tab: str = "projects",
    *,
    notice: str | None = None,
    error: FormError = NO_ERROR,
    new_invite: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    me = ctx.me
    c = communities.get_community(ctx.db, me, community_id)
    if tab not in {k for k, _ in TABS}:
        tab = "projects"
    values: dict[str, Any] = {
        "c": c,
        "tab": tab,
        "tabs": TABS,
        "notice": notice,
        "error": error,
        "new_invite": new_invite,
        "base": f"/communities/{c.id}",
        "rank": access.rank_on(ctx.db, me, c).name.title(),
    }
    if tab == "projects":
        values["projects"] = queries.projects(ctx.db, me, c.id)
        values["can_create"] = access.can(ctx.db, me, Action.PROJECT_CREATE, c)
    elif tab == "members":
        values["mv"] = members_view(ctx, c)
    else:
        values["s"] = _settings_view(ctx, c)
    template = "community_tabs.html" if ctx.hx_target("tab-area") else "community.html"
    return render(ctx, template, status=status, crumbs=crumbs_for(ctx, c, link_self=False), **values)


RENDERERS["communities"] = community_page


@router.get("/communities/{community_id}")
def community(community_id: str, ctx: Ctx, tab: str = "projects") -> Response:
    return community_page(ctx, community_id, tab)


def _saved(ctx: WebCtx, community_id: str, notice: str) -> Response:
    if ctx.htmx:
        return community_page(ctx, community_id, "settings", notice=notice)
    return redirect(ctx, f"/communities/{community_id}?tab=settings", flash=notice)


@router.post("/communities/{community_id}/projects")
def create_project(community_id: str, ctx: Ctx) -> Response:
    values = {"name": ctx.value("name"), "description": ctx.value("description")}
    try:
        p = tenancy.create_project(
            ctx.db,
            ctx.me,
            ctx.settings,
            community_id=community_id,
            name=values["name"],
            description=values["description"],
            inventory=ctx.inventory,
        )
        ctx.commit()
    except DomainError as e:
        ctx.rollback()
        if e.field == "communityId":
            raise NotFound(e.detail) from None
        return community_page(
            ctx, community_id, "projects", error=FormError.of("project", e, values), status=e.status
        )
    return redirect(ctx, f"/projects/{p.id}", flash=f"Project {p.name} created. You are its Admin.")


@router.post("/communities/{community_id}/settings")
def update_community(community_id: str, ctx: Ctx) -> Response:
    values = {
        "name": ctx.value("name"),
        "description": ctx.value("description"),
        "labels": ctx.value("labels"),
    }
    try:
        communities.update_community(
            ctx.db,
            ctx.me,
            community_id,
            name=values["name"],
            description=values["description"],
            labels=forms.parse_labels(values["labels"]),
        )
        ctx.commit()
    except NotFound:
        raise
    except DomainError as e:
        ctx.rollback()
        return community_page(
            ctx, community_id, "settings", error=FormError.of("general", e, values), status=e.status
        )
    return _saved(ctx, community_id, "Community settings saved")


@router.post("/communities/{community_id}/billing-account")
def link_billing_account(community_id: str, ctx: Ctx) -> Response:
    ba = ctx.value("billingAccountId") or None
    try:
        communities.link_billing_account(ctx.db, ctx.me, ctx.settings, community_id, ba)
        ctx.commit()
    except NotFound:
        raise
    except DomainError as e:
        ctx.rollback()
        return community_page(
            ctx,
            community_id,
            "settings",
            error=FormError.of("billing", e, {"billingAccountId": ba}),
            status=e.status,
        )
    return _saved(ctx, community_id, "Billing account linked" if ba else "Billing account unlinked")


@router.post("/communities/{community_id}/restrictions")
def set_restrictions(community_id: str, ctx: Ctx) -> Response:
    allow_all = ctx.value("allowAll") == "on"
    chosen = ctx.values("allowedConfigurations")
    features = {k: k in ctx.values("features") for k in communities.FEATURES}
    try:
        communities.set_restrictions(
            ctx.db,
            ctx.me,
            community_id,
            allowed_configurations=None if allow_all else chosen,
            features=features,
        )
        if allow_all:
            communities.clear_allowed_configurations(ctx.db, ctx.me, community_id)
        ctx.commit()
    except NotFound:
        raise
    except DomainError as e:
        ctx.rollback()
        return community_page(
            ctx, community_id, "settings", error=FormError.of("restrictions", e), status=e.status
        )
    return _saved(ctx, community_id, "Restrictions saved")
