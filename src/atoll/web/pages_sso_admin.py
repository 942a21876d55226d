"""The installation admin's single sign-on page: the identity providers users sign in with, each
with the redirect URI to register at it; add, turn on and off, remove (docs/admin.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from atoll.domain import access, audit, sso_providers
from atoll.domain.access import Action
from atoll.domain.sso_providers import ProviderFields
from atoll.errors import DomainError
from atoll.store.tables import Organization
from atoll.web.context import FormError, WebCtx, WebRoute, redirect, render, signed_in

router = APIRouter(route_class=WebRoute, include_in_schema=False)
Ctx = Annotated[WebCtx, Depends(signed_in)]
NO_ERROR = FormError("", None, "")
FIELDS = (
    "name",
    "displayName",
    "issuer",
    "clientId",
    "clientSecret",
    "organizationId",
    "scopes",
    "groupsClaim",
    "adminGroups",
)


def sso_page(ctx: WebCtx, *, error: FormError = NO_ERROR, status: int = 200) -> Response:
    access.authorize(ctx.db, ctx.me, Action.SYSTEM_MANAGE)
    orgs = {o.id: o.name for o in ctx.db.query(Organization).order_by(Organization.name)}
    rows = [
        {
            "id": p.id,
            "name": p.name,
            "display_name": p.display_name,
            "issuer": p.issuer,
            "client_id": p.client_id,
            "organization": orgs.get(p.organization_id, p.organization_id),
            "groups_claim": p.groups_claim,
            "admin_groups": ", ".join(p.admin_groups or []),
            "enabled": p.enabled,
            "managed_by": p.managed_by,
            "redirect_uri": sso_providers.redirect_uri(ctx.settings.base_url, p.name),
        }
        for p in sso_providers.listed(ctx.db)
    ]
    return render(
        ctx,
        "sso_admin.html",
        status=status,
        providers=rows,
        orgs=orgs,
        error=error,
        passwords_on=ctx.settings.password_signin,
        crumbs=[{"label": "Single sign-on", "url": ""}],
    )


@router.get("/admin/sso")
def sso_admin(ctx: Ctx) -> Response:
    return sso_page(ctx)


@router.post("/admin/sso")
def add_provider(ctx: Ctx) -> Response:
    access.authorize(ctx.db, ctx.me, Action.SYSTEM_MANAGE)
    values = {k: ctx.value(k) for k in FIELDS if k != "clientSecret"}
    try:
        fields = ProviderFields(
            name=values["name"],
            display_name=values["displayName"],
            issuer=values["issuer"],
            client_id=values["clientId"],
            client_secret=str(ctx.form.get("clientSecret") or ""),
            organization=values["organizationId"],
            scopes=values["scopes"] or "openid profile email",
            groups_claim=values["groupsClaim"],
            admin_groups=[g.strip() for g in values["adminGroups"].split(",") if g.strip()],
        )
        row = sso_providers.create(ctx.db, ctx.request.app.state.secret_box, fields)
        audit.note_action("create_identity_provider")
        ctx.commit()
    except DomainError as e:
        ctx.rollback()
        return sso_page(ctx, error=FormError.of("provider", e, values), status=e.status)
    return redirect(ctx, "/admin/sso", flash=f"Identity provider {row.name} added: register its redirect URI")


@router.post("/admin/sso/{provider_id}/enabled")
def toggle_provider(provider_id: str, ctx: Ctx) -> Response:
    access.authorize(ctx.db, ctx.me, Action.SYSTEM_MANAGE)
    row = sso_providers.get(ctx.db, provider_id)
    sso_providers.refuse_settings_managed(row)
    row.enabled = not row.enabled
    ctx.commit()
    state = "on" if row.enabled else "off"
    return redirect(ctx, "/admin/sso", flash=f"Sign-in with {row.name} is {state}")


@router.post("/admin/sso/{provider_id}/remove")
def remove_provider(provider_id: str, ctx: Ctx) -> Response:
    access.authorize(ctx.db, ctx.me, Action.SYSTEM_MANAGE)
    row = sso_providers.get(ctx.db, provider_id)
    try:
        sso_providers.remove(ctx.db, row)
        ctx.commit()
    except DomainError as e:
        ctx.rollback()
        return sso_page(ctx, error=FormError("providers", None, e.detail), status=e.status)
    return redirect(ctx, "/admin/sso", flash=f"Identity provider {row.name} removed")
