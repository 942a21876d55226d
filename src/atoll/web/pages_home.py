"""Home (your organizations, communities and projects), organization pages, the configuration catalogue."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from atoll.domain import access, audit, catalog, communities, environments, members, tenancy
from atoll.domain.access import Action
from atoll.errors import DomainError, NotFound
from atoll.states import EnvironmentStatus
from atoll.store.tables import Community, Organization
from atoll.web import forms, queries
from atoll.web.context import FormError, WebCtx, WebRoute, redirect, render, signed_in
from atoll.web.pages_members import RENDERERS, members_view

router = APIRouter(route_class=WebRoute, include_in_schema=False)
Ctx = Annotated[WebCtx, Depends(signed_in)]
NO_ERROR = FormError("", None, "")


# --- home -----------------------------------------------------------------------------------


def home_page(ctx: WebCtx, *, error: FormError = NO_ERROR, status: int = 200) -> Response:
    me = ctx.me
    orgs = queries.organizations(ctx.db, me)
    comms = queries.communities(ctx.db, me)
    projs = queries.projects(ctx.db, me)
    org_names = {o.id: o.name for o in orgs} | queries.names(
        ctx.db, Organization, {c.organization_id for c in comms}
    )
    community_names = {c.id: c.name for c in comms} | queries.names(
        ctx.db, Community, {p.community_id for p in projs}
    )
    creatable = [o for o in orgs if access.can(ctx.db, me, Action.COMMUNITY_CREATE, o)]
    accounts = [
        ba
        for ba in queries.billing_accounts(ctx.db, me)
        if ba.active and access.can(ctx.db, me, Action.BILLING_ACCOUNT_USE, ba)
    ]
    return render(
        ctx,
        "home.html",
        status=status,
        orgs=orgs,
        communities=comms,
        projects=projs,
        org_names=org_names,
        community_names=community_names,
        creatable_orgs=creatable,
        billing_accounts=accounts,
        zones=ctx.settings.zones,
        error=error,
    )


@router.get("/")
def home(ctx: Ctx) -> Response:
    return home_page(ctx)


@router.post("/communities")
def create_community(ctx: Ctx) -> Response:
    values = {
        k: ctx.value(k) for k in ("organizationId", "name", "description", "zoneId", "billingAccountId")
    }
    try:
        c = communities.create_community(
            ctx.db,
            ctx.me,
            ctx.settings,
            organization_id=values["organizationId"],
            name=values["name"],
            description=values["description"],
            zone_id=values["zoneId"] or None,
            billing_account_id=values["billingAccountId"] or None,
        )
        ctx.commit()
    except DomainError as e:
        ctx.rollback()
        return home_page(ctx, error=FormError.of("community", e, values), status=e.status)
    return redirect(ctx, f"/communities/{c.id}", flash=f"Community {c.name} created. You are its Admin.")


# --- organizations --------------------------------------------------------------------------

ORG_TABS = [
    ("communities", "Communities"),
    ("members", "Members"),
    ("groups", "Groups"),
    ("audit", "Audit log"),
]
AUDIT_PAGE = 100


def org_page(
    ctx: WebCtx,
    org_id: str,
    tab: str = "communities",
    *,
    notice: str | None = None,
    error: FormError = NO_ERROR,
    status: int = 200,
    audit_filters: dict[str, str] | None = None,
    **_: Any,
) -> Response:
    me = ctx.me
    org = tenancy.get_organization(ctx.db, me, org_id)
    can_manage = access.can(ctx.db, me, Action.ORG_MANAGE_ACCESS, org)
    can_audit = access.can(ctx.db, me, Action.ORG_VIEW_AUDIT, org)
    hidden = {"members"} if not can_manage else set()
    if not can_audit:
        hidden.add("audit")
    tabs = [t for t in ORG_TABS if t[0] not in hidden]
    if tab not in {k for k, _ in tabs}:
        tab = "communities"
    values: dict[str, Any] = {
        "org": org,
        "tab": tab,
        "tabs": tabs,
        "notice": notice,
        "error": error,
        "base": f"/orgs/{org.id}",
        "can_manage_groups": access.can(ctx.db, me, Action.GROUP_MANAGE, org),
    }
    if tab == "communities":
        values["communities"] = queries.communities(ctx.db, me, org.id)
    elif tab == "members":
        values["mv"] = members_view(ctx, org)
        values["new_invite"] = None
    elif tab == "groups":
        values["groups"] = [
            {"group": g, "members": members.group_members(ctx.db, me, g.id)}
            for g in queries.groups(ctx.db, me, org.id)
        ]
    elif tab == "audit":
        values.update(_audit_view(ctx, org.id, audit_filters or {}))
    crumbs = [{"label": org.name, "url": ""}]
    template = "org_tabs.html" if ctx.hx_target("tab-area") else "org.html"
    return render(ctx, template, status=status, crumbs=crumbs, **values)


RENDERERS["orgs"] = org_page


def _audit_view(ctx: WebCtx, org_id: str, wanted: dict[str, str]) -> dict[str, Any]:
    """The newest records matching the filters, and the link to the next (older) page."""
    filters = audit.Filters(
        actor=wanted.get("actor") or None,
        action=wanted.get("action") or None,
        result=wanted.get("result") or None,
    )
    try:
        rows, nxt = audit.newest(ctx.db, org_id, filters, AUDIT_PAGE, wanted.get("page") or None)
        problem = ""
    except DomainError as e:
        rows, nxt, problem = [], None, e.detail
    query = {k: v for k, v in wanted.items() if v and k != "page"}
    return {
        "audit_rows": [audit.as_dict(r) for r in rows],
        "audit_filters": query,
        "audit_problem": problem,
        "audit_next": urlencode({**query, "tab": "audit", "page": nxt}) if nxt else "",
        "audit_export": urlencode(query),
        "audit_results": audit.RESULTS,
    }


@router.get("/orgs/{org_id}")
def org(
    org_id: str,
    ctx: Ctx,
    tab: Annotated[str, Query(max_length=32)] = "communities",
    actor: Annotated[str, Query(max_length=128)] = "",
    action: Annotated[str, Query(max_length=64)] = "",
    result: Annotated[str, Query(max_length=16)] = "",
    page_token: Annotated[str, Query(alias="page", max_length=512)] = "",
) -> Response:
    wanted = {"actor": actor, "action": action, "result": result, "page": page_token}
    return org_page(ctx, org_id, tab, audit_filters=wanted)


def _org_after(ctx: WebCtx, org_id: str, notice: str) -> Response:
    if ctx.htmx:
        return org_page(ctx, org_id, "groups", notice=notice)
    return redirect(ctx, f"/orgs/{org_id}?tab=groups", flash=notice)


@router.post("/orgs/{org_id}/groups")
def create_group(org_id: str, ctx: Ctx) -> Response:
    values = {"name": ctx.value("name"), "description": ctx.value("description")}
    try:
        g = members.create_group(
            ctx.db, ctx.me, organization_id=org_id, name=values["name"], description=values["description"]
        )
        ctx.commit()
    except DomainError as e:
        ctx.rollback()
        if e.field == "organizationId":
            raise NotFound(e.detail) from None
        return org_page(ctx, org_id, "groups", error=FormError.of("group", e, values), status=e.status)
    return _org_after(ctx, org_id, f"Group {g.name} created")


@router.post("/orgs/{org_id}/groups/{group_id}/members")
def add_group_member(org_id: str, group_id: str, ctx: Ctx) -> Response:
    values = {"user": ctx.value("user"), "group": group_id}
    try:
        user = members.add_group_member(ctx.db, ctx.me, group_id, values["user"])
        ctx.commit()
    except NotFound:
        raise
    except DomainError as e:
        ctx.rollback()
        return org_page(ctx, org_id, "groups", error=FormError.of("groupmember", e, values), status=e.status)
    return _org_after(ctx, org_id, f"{user.username} added to the group")


@router.post("/orgs/{org_id}/groups/{group_id}/members/{username}/remove")
def remove_group_member(org_id: str, group_id: str, username: str, ctx: Ctx) -> Response:
    members.remove_group_member(ctx.db, ctx.me, group_id, username)
    ctx.commit()
    return _org_after(ctx, org_id, f"{username} removed from the group")


# --- configurations -------------------------------------------------------------------------


@router.get("/configurations")
def configurations(ctx: Ctx) -> Response:
    inv = ctx.inventory
    rows = []
    for cfg in catalog.list_configurations(ctx.db, ctx.me):
        av = catalog.availability(cfg, inv, ctx.settings.pool_overcommit)
        rows.append(
            {
                "cfg": cfg,
                "available": av.available,
                "reason": av.reason,
                "units_per_hour": cfg.units_per_second * 3600,
            }
        )
    return render(
        ctx,
        "configurations.html",
        rows=rows,
        inv=inv,
        overcommit=ctx.settings.pool_overcommit,
        fmt_units=forms.format_units,
        isolation=ctx.request.app.state.services.isolation.rows(),
    )


# --- environments ---------------------------------------------------------------------------


@router.get("/environments")
def environments_page(ctx: Ctx) -> Response:
    rows = environments.list_environments(ctx.db, ctx.me)
    return render(ctx, "environments.html", rows=rows, ready=EnvironmentStatus.READY)
