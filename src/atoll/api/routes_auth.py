"""Sign-in, the caller's own account, personal API tokens, users."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy import select

from atoll.api.common import PUBLIC, SELF, OrgFilter, PageSize, PageToken, act, token_out
from atoll.api.deps import SESSION_COOKIE, AnonCtxDep, Ctx, CtxDep
from atoll.api.pagination import page
from atoll.api.schemas import Page
from atoll.api.schemas_auth import (
    NewTokenOut,
    PasswordChange,
    SessionOut,
    SignIn,
    TokenCreate,
    TokenLogin,
    TokenOut,
    UserCreate,
    UserOut,
)
from atoll.domain import access, audit, auth, listing, members, throttle
from atoll.domain.access import Action, ResourceType
from atoll.errors import Invalid
from atoll.store.tables import AccessBinding, ApiToken, Organization, User

router = APIRouter()


def signin_guard(ctx: Ctx) -> throttle.Guard:
    """The sign-in limits for this request's client address (behind a proxy on 127.0.0.1, the
    address it forwards: uvicorn runs with proxy headers)."""
    return throttle.guard(ctx.settings, ctx.request.client.host if ctx.request.client else None)


def password_sign_in(ctx: Ctx, username: str, password: str, action: str) -> User:
    """The user these credentials sign in as, within the sign-in limits and the installation's
    password sign-in setting; the audit record names the attempt either way."""
    audit.note_action(action)
    audit.note_attempt(ctx.db, username, "password")
    user = auth.authenticate(
        ctx.db, username, password, signin_guard(ctx), passwords_on=ctx.settings.password_signin
    )
    audit.note_actor(user.id, user.username, "password")
    return user


def set_session_cookie(response: Response, raw: str, secure: bool, max_age: int) -> None:
    response.set_cookie(
        SESSION_COOKIE, raw, max_age=max_age, httponly=True, samesite="lax", secure=secure, path="/"
    )


@router.post("/auth/sessions", response_model=SessionOut, openapi_extra=act(PUBLIC), tags=["auth"])
def sign_in(body: SignIn, ctx: AnonCtxDep, response: Response) -> SessionOut:
    """Start a browser session: sets an HttpOnly cookie and returns the CSRF token for writes."""
    user = password_sign_in(ctx, body.username, body.password, "sign_in")
    new = auth.start_session(ctx.db, user, ctx.settings.session_ttl_hours)
    secure = ctx.settings.cookies_secure_for(ctx.request.url.scheme)
    set_session_cookie(response, new.cookie, secure, ctx.settings.session_ttl_hours * 3600)
    return ctx.commit(
        SessionOut(
            user=UserOut.model_validate(user), csrf_token=new.csrf_token, expires_at=new.session.expires_at
        )
    )


@router.delete("/auth/sessions/current", status_code=204, openapi_extra=act(SELF), tags=["auth"])
def sign_out(ctx: CtxDep, response: Response) -> None:
    ctx.me  # noqa: B018 - requires a signed-in caller
    if ctx.web_session is not None:
        auth.end_session(ctx.db, ctx.web_session)
    response.delete_cookie(SESSION_COOKIE, path="/")
    ctx.commit(None)


@router.post(
    "/auth/tokens", response_model=NewTokenOut, status_code=201, openapi_extra=act(PUBLIC), tags=["auth"]
)
def token_login(body: TokenLogin, ctx: AnonCtxDep) -> NewTokenOut:
    """Trade a username and password for a personal API token (used by `atoll login`)."""
    user = password_sign_in(ctx, body.username, body.password, "sign_in_for_token")
    tok, raw = auth.create_token(ctx.db, user, body.name, body.expires_in_days)
    return ctx.commit_and_wake(NewTokenOut(**token_out(tok).model_dump(), token=raw), "dataplane")


@router.get("/users/me", response_model=UserOut, openapi_extra=act(SELF), tags=["users"])
def whoami(ctx: CtxDep) -> UserOut:
    return UserOut.model_validate(ctx.me.user)


@router.put("/users/me/password", status_code=204, openapi_extra=act(SELF), tags=["users"])
def change_password(body: PasswordChange, ctx: CtxDep) -> None:
    keep = ctx.web_session.id if ctx.web_session else None
    auth.change_password(
        ctx.db, ctx.me.user, body.current_password, body.new_password, signin_guard(ctx), keep
    )
    ctx.commit(None)


@router.get("/tokens", response_model=Page[TokenOut], openapi_extra=act(SELF), tags=["tokens"])
def list_tokens(ctx: CtxDep, page_size: int = PageSize, page_token: str | None = PageToken) -> Page[TokenOut]:
    rows, nxt = page(ctx.db, listing.tokens(ctx.me.user), ApiToken, page_size, page_token)
    return Page(items=[token_out(t) for t in rows], next_page_token=nxt)


@router.post("/tokens", response_model=NewTokenOut, status_code=201, openapi_extra=act(SELF), tags=["tokens"])
def create_token(body: TokenCreate, ctx: CtxDep) -> NewTokenOut:
    tok, raw = auth.create_token(ctx.db, ctx.me.user, body.name, body.expires_in_days)
    return ctx.commit_and_wake(NewTokenOut(**token_out(tok).model_dump(), token=raw), "dataplane")


@router.delete("/tokens/{token_id}", response_model=TokenOut, openapi_extra=act(SELF), tags=["tokens"])
def revoke_token(token_id: str, ctx: CtxDep) -> TokenOut:
    return ctx.commit_and_wake(token_out(auth.revoke_token(ctx.db, ctx.me.user, token_id)), "dataplane")


@router.get("/users", response_model=Page[UserOut], openapi_extra=act(SELF), tags=["users"])
def list_users(
    ctx: CtxDep,
    organization_id: str | None = OrgFilter,
    page_size: int = PageSize,
    page_token: str | None = PageToken,
) -> Page[UserOut]:
    """Admins see every account; others see the members of their organizations."""
    users = members.list_users(ctx.db, ctx.me, organization_id)
    ids = [u.id for u in users]
    rows, nxt = page(ctx.db, select(User).where(User.id.in_(ids)), User, page_size, page_token)
    return Page(items=[UserOut.model_validate(u) for u in rows], next_page_token=nxt)


@router.post(
    "/users",
    response_model=UserOut,
    status_code=201,
    openapi_extra=act(Action.SYSTEM_MANAGE),
    tags=["users"],
)
def create_user(body: UserCreate, ctx: CtxDep) -> UserOut:
    access.authorize(ctx.db, ctx.me, Action.SYSTEM_MANAGE)
    org = None
    if body.organization_id:
        org = ctx.db.get(Organization, body.organization_id) or ctx.db.scalar(
            select(Organization).where(Organization.name == body.organization_id)
        )
        if org is None:
            raise Invalid(f"organization {body.organization_id!r} not found", field="organizationId")
    user = auth.create_user(
        ctx.db,
        username=body.username,
        password=body.password,
        email=body.email,
        display_name=body.display_name,
        is_admin=body.is_admin,
    )
    if org is not None:
        ctx.db.add(
            AccessBinding(
                resource_type=ResourceType.ORGANIZATION.value,
                resource_id=org.id,
                subject_type="user",
                subject_id=user.id,
                role="member",
                created_by=ctx.me.user.id,
            )
        )
    return ctx.commit(UserOut.model_validate(user))
