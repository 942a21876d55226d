"""Single sign-on through the API: the providers to sign in with, the token `atoll login --sso`
finishes with, the providers admins configure, and the SSO sign-out of a user. The browser's
side of a sign-in (the redirects) is in web/pages_sso.py."""

from __future__ import annotations

from fastapi import APIRouter, Path
from sqlalchemy import select

from atoll.api.bounds import MAX_ID
from atoll.api.common import PUBLIC, act, token_out
from atoll.api.deps import AnonCtxDep, CtxDep
from atoll.api.schemas_auth import NewTokenOut
from atoll.api.schemas_sso import (
    ProviderCreate,
    ProviderOut,
    ProviderPublic,
    ProviderUpdate,
    SsoSignOutOut,
    SsoTokenRedeem,
)
from atoll.domain import access, audit, sso_accounts, sso_providers
from atoll.domain.access import Action
from atoll.domain.sso_providers import ProviderFields
from atoll.errors import Invalid, NotFound
from atoll.identity import oidc
from atoll.settings import Settings
from atoll.store.tables import ExternalIdentity, IdentityProvider, Organization, User

router = APIRouter()


def _out(settings: Settings, row: IdentityProvider) -> ProviderOut:
    return ProviderOut(
        id=row.id,
        name=row.name,
        display_name=row.display_name,
        issuer=row.issuer,
        client_id=row.client_id,
        has_client_secret=bool(row.client_secret),
        scopes=row.scopes,
        organization_id=row.organization_id,
        groups_claim=row.groups_claim,
        admin_groups=list(row.admin_groups or []),
        username_claim=row.username_claim,
        enabled=row.enabled,
        managed_by=row.managed_by,
        redirect_uri=sso_providers.redirect_uri(settings.base_url, row.name),
        created_at=row.created_at,
    )


@router.get("/auth/providers", response_model=list[ProviderPublic], openapi_extra=act(PUBLIC), tags=["auth"])
def sign_in_providers(ctx: AnonCtxDep) -> list[ProviderPublic]:
    """The identity providers users can sign in with here."""
    base = ctx.settings.base_url
    return [
        ProviderPublic(name=p.name, display_name=p.display_name, sign_in_url=f"{base}/login/sso/{p.name}")
        for p in sso_providers.listed(ctx.db, only_enabled=True)
    ]


@router.post(
    "/auth/sso/tokens", response_model=NewTokenOut, status_code=201, openapi_extra=act(PUBLIC), tags=["auth"]
)
def redeem_sso_code(body: SsoTokenRedeem, ctx: AnonCtxDep) -> NewTokenOut:
    """Trade the one-time code of a finished SSO sign-in for a personal API token (`atoll login --sso`)."""
    audit.note_action("create_token_sso")
    tok, raw = sso_accounts.redeem_cli_code(ctx.db, body.code, body.verifier, body.name, body.expires_in_days)
    user = ctx.db.get(User, tok.user_id)
    if user is not None:
        audit.note_actor(user.id, user.username, "sso")
    audit.note_detail(f"token {tok.name!r} ({tok.prefix}…)")
    ctx.commit(None)
    ctx.services.wake("dataplane")
    return NewTokenOut(**token_out(tok).model_dump(), token=raw)


@router.get(
    "/identity-providers",
    response_model=list[ProviderOut],
    openapi_extra=act(Action.SYSTEM_MANAGE),
    tags=["identity providers"],
)
def list_providers(ctx: CtxDep) -> list[ProviderOut]:
    access.authorize(ctx.db, ctx.me, Action.SYSTEM_MANAGE)
    return [_out(ctx.settings, p) for p in sso_providers.listed(ctx.db)]


@router.post(
    "/identity-providers",
    response_model=ProviderOut,
    status_code=201,
    openapi_extra=act(Action.SYSTEM_MANAGE),
    tags=["identity providers"],
)
def create_provider(body: ProviderCreate, ctx: CtxDep) -> ProviderOut:
    access.authorize(ctx.db, ctx.me, Action.SYSTEM_MANAGE)
    row = sso_providers.create(ctx.db, ctx.secret_box, _fields(body))
    audit.note_action("create_identity_provider")
    return ctx.commit(_out(ctx.settings, row))


@router.get(
    "/identity-providers/{provider_id}",
    response_model=ProviderOut,
    openapi_extra=act(Action.SYSTEM_MANAGE),
    tags=["identity providers"],
)
def get_provider(ctx: CtxDep, provider_id: str = Path(max_length=MAX_ID)) -> ProviderOut:
    access.authorize(ctx.db, ctx.me, Action.SYSTEM_MANAGE)
    return _out(ctx.settings, sso_providers.get(ctx.db, provider_id))


@router.patch(
    "/identity-providers/{provider_id}",
    response_model=ProviderOut,
    openapi_extra=act(Action.SYSTEM_MANAGE),
    tags=["identity providers"],
)
def update_provider(
    body: ProviderUpdate, ctx: CtxDep, provider_id: str = Path(max_length=MAX_ID)
) -> ProviderOut:
    access.authorize(ctx.db, ctx.me, Action.SYSTEM_MANAGE)
    row = sso_providers.get(ctx.db, provider_id)
    sso_providers.refuse_settings_managed(row)
    oidc.DISCOVERY.forget(row.issuer)  # a changed issuer or keys: discovered again at next use
    sso_providers.apply(ctx.db, ctx.secret_box, row, _fields(body))
    return ctx.commit(_out(ctx.settings, row))


@router.delete(
    "/identity-providers/{provider_id}",
    status_code=204,
    openapi_extra=act(Action.SYSTEM_MANAGE),
    tags=["identity providers"],
)
def delete_provider(ctx: CtxDep, provider_id: str = Path(max_length=MAX_ID)) -> None:
    """Remove a provider: its users keep their accounts (and can be given passwords), but can no
    longer sign in through it."""
    access.authorize(ctx.db, ctx.me, Action.SYSTEM_MANAGE)
    sso_providers.remove(ctx.db, sso_providers.get(ctx.db, provider_id))
    ctx.commit(None)


@router.post(
    "/users/{user_id}:end-sso-sessions",
    response_model=SsoSignOutOut,
    openapi_extra=act(Action.ORG_MANAGE_ACCESS),
    tags=["users"],
)
def end_sso_sessions(ctx: CtxDep, user_id: str = Path(max_length=MAX_ID)) -> SsoSignOutOut:
    """End a user's browser sessions and revoke the API tokens that came through single sign-on,
    e.g. once they left a group in the provider. For admins of an organization the user signs in
    to through SSO."""
    orgs = ctx.db.scalars(
        select(Organization)
        .join(IdentityProvider, IdentityProvider.organization_id == Organization.id)
        .join(ExternalIdentity, ExternalIdentity.provider_id == IdentityProvider.id)
        .where(ExternalIdentity.user_id == user_id)
    ).all()
    allowed = [o for o in orgs if access.can(ctx.db, ctx.me, Action.ORG_MANAGE_ACCESS, o)]
    if not allowed:
        visible = [o for o in orgs if access.can(ctx.db, ctx.me, Action.ORG_VIEW, o)]
        if visible:  # a member sees the user but may not do this: 403, as authorize says it
            access.authorize(ctx.db, ctx.me, Action.ORG_MANAGE_ACCESS, visible[0])
        raise NotFound(f"user {user_id!r} has no single sign-on identity here")
    user = ctx.db.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id!r} not found")
    sessions, tokens = sso_accounts.end_sso_access(ctx.db, user)
    audit.note_action(
        "end_sso_sessions", detail=f"{user.username}: {sessions} sessions ended, {tokens} tokens revoked"
    )
    ctx.db.commit()
    ctx.services.wake("dataplane")
    return SsoSignOutOut(sessions_ended=sessions, tokens_revoked=tokens)


def _fields(body: ProviderCreate | ProviderUpdate) -> ProviderFields:
    data = body.model_dump(exclude_unset=isinstance(body, ProviderUpdate))
    org = data.pop("organization_id", None)
    if isinstance(body, ProviderUpdate) and "organization_id" in body.model_fields_set and org is None:
        raise Invalid("organizationId cannot be empty", field="organizationId")
    return ProviderFields(organization=org, **data)
