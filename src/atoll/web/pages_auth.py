"""Sign in and out, the user's own account (password, API tokens), and invite links."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from atoll.domain import audit, auth, members, sso_providers, throttle
from atoll.errors import DomainError, Forbidden, Invalid, TooManyRequests
from atoll.store.tables import Community, Project
from atoll.web import forms, queries
from atoll.web.context import (
    FormError,
    WebCtx,
    WebRoute,
    public,
    redirect,
    render,
    safe_next,
    signed_in,
)

router = APIRouter(route_class=WebRoute, include_in_schema=False)
Ctx = Annotated[WebCtx, Depends(signed_in)]
Public = Annotated[WebCtx, Depends(public)]
NO_ERROR = FormError("", None, "")


def _signin_guard(ctx: WebCtx) -> throttle.Guard:
    """The sign-in limits for this browser's address (as the API's sign-in applies them)."""
    return throttle.guard(ctx.settings, ctx.request.client.host if ctx.request.client else None)


def _retry_after(response: Response, e: DomainError) -> Response:
    if isinstance(e, TooManyRequests):
        response.headers["Retry-After"] = str(e.retry_after)
    return response


def _begin_session(ctx: WebCtx, user: Any) -> None:
    new = auth.start_session(ctx.db, user, ctx.settings.session_ttl_hours)
    ctx.cookies_out.append((auth.SESSION_COOKIE, new.cookie, ctx.settings.session_ttl_hours * 3600))


# --- sign in / out --------------------------------------------------------------------------


@router.get("/login")
def login_page(ctx: Public, next: str = "/") -> Response:
    if ctx.principal is not None:
        return redirect(ctx, safe_next(next))
    return login_page_for(ctx, safe_next(next))


def login_page_for(
    ctx: WebCtx, nxt: str, *, error: FormError = NO_ERROR, username: str = "", status: int = 200
) -> Response:
    """The sign-in page: a button per identity provider, and the password form."""
    return render(
        ctx,
        "login.html",
        status=status,
        next=nxt,
        error=error,
        username_value=username,
        providers=[(p.name, p.display_name) for p in sso_providers.listed(ctx.db, only_enabled=True)],
        passwords_on=ctx.settings.password_signin,
    )


@router.post("/login")
def login(ctx: Public) -> Response:
    username = ctx.value("username")
    password = ctx.form.get("password")
    nxt = safe_next(ctx.value("next"))
    audit.note_action("sign_in")
    audit.note_attempt(ctx.db, username, "password")
    try:
        pw = password if isinstance(password, str) else ""
        user = auth.authenticate(
            ctx.db, username, pw, _signin_guard(ctx), passwords_on=ctx.settings.password_signin
        )
    except DomainError as e:
        # 401 for a wrong password, 429 (with Retry-After) while locked out after too many.
        page = login_page_for(ctx, nxt, error=FormError.of("login", e), username=username, status=e.status)
        return _retry_after(page, e)
    audit.note_actor(user.id, user.username, "password")
    _begin_session(ctx, user)
    ctx.commit()
    return redirect(ctx, nxt)


@router.post("/logout")
def logout(ctx: Ctx) -> Response:
    if ctx.web_session is not None:
        auth.end_session(ctx.db, ctx.web_session)
        ctx.commit()
    ctx.cookies_out.append((auth.SESSION_COOKIE, "", 0))
    return redirect(ctx, "/login", flash="You are signed out.")


# --- account --------------------------------------------------------------------------------


def account_page(
    ctx: WebCtx,
    *,
    notice: str | None = None,
    error: FormError = NO_ERROR,
    new_token: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    user = ctx.me.user
    rows = [
        {
            "id": t.id,
            "name": t.name,
            "prefix": t.prefix,
            "created_at": t.created_at,
            "expires_at": t.expires_at,
            "last_used_at": t.last_used_at,
            "state": auth.token_state(t),
        }
        for t in queries.tokens(ctx.db, user)
    ]
    template = "account_body.html" if ctx.hx_target("account-body") else "account.html"
    return render(
        ctx,
        template,
        status=status,
        user=user,
        tokens=rows,
        notice=notice,
        error=error,
        new_token=new_token,
        min_password=auth.MIN_PASSWORD,
    )


@router.get("/account")
def account(ctx: Ctx) -> Response:
    return account_page(ctx)


@router.post("/account/password")
def change_password(ctx: Ctx) -> Response:
    current = str(ctx.form.get("currentPassword") or "")
    new = str(ctx.form.get("newPassword") or "")
    confirm = str(ctx.form.get("confirmPassword") or "")
    try:
        if new != confirm:
            raise Invalid("the two new passwords differ", field="confirmPassword")
        keep = ctx.web_session.id if ctx.web_session else None
        auth.change_password(ctx.db, ctx.me.user, current, new, _signin_guard(ctx), keep)
        ctx.commit()
    except DomainError as e:
        ctx.rollback()
        field = "newPassword" if e.field == "password" else e.field
        page = account_page(ctx, error=FormError("password", field, e.detail), status=e.status)
        return _retry_after(page, e)
    return account_page(ctx, notice="Password changed")


@router.post("/account/tokens")
def create_token(ctx: Ctx) -> Response:
    values = {"name": ctx.value("name"), "expiresInDays": ctx.value("expiresInDays")}
    try:
        days = forms.parse_int(values["expiresInDays"], "expiresInDays", 0) or None
        tok, raw = auth.create_token(ctx.db, ctx.me.user, values["name"], days)
        ctx.commit(wake="dataplane")
    except DomainError as e:
        ctx.rollback()
        return account_page(ctx, error=FormError.of("token", e, values), status=e.status)
    # Shown once, on this response only; only the hash is stored.
    return account_page(ctx, notice=f"Token {tok.name!r} created", new_token={"name": tok.name, "token": raw})


@router.get("/account/tokens")
def tokens_redirect(ctx: Ctx) -> Response:
    return redirect(ctx, "/account")


@router.post("/account/tokens/{token_id}/revoke")
def revoke_token(token_id: str, ctx: Ctx) -> Response:
    tok = auth.revoke_token(ctx.db, ctx.me.user, token_id)
    ctx.commit(wake="dataplane")
    if ctx.htmx:
        return account_page(ctx, notice=f"Token {tok.name!r} revoked")
    return redirect(ctx, "/account", flash=f"Token {tok.name!r} revoked")


# --- invite links ---------------------------------------------------------------------------


def _target_url(target: Community | Project) -> str:
    return f"/projects/{target.id}" if isinstance(target, Project) else f"/communities/{target.id}"


def invite_page(ctx: WebCtx, token: str, *, error: FormError = NO_ERROR, status: int = 200) -> Response:
    inv, target = members.open_invite(ctx.db, token)
    kind = "project" if isinstance(target, Project) else "community"
    community_name = ""
    if isinstance(target, Project):
        community_name = queries.names(ctx.db, Community, {target.community_id}).get(target.community_id, "")
    return render(
        ctx,
        "invite.html",
        status=status,
        token=token,
        kind=kind,
        target_name=target.name,
        community_name=community_name,
        role=inv.role,
        role_id=forms.role_id(inv.resource_type, inv.role),
        expires_at=inv.expires_at,
        error=error,
        min_password=auth.MIN_PASSWORD,
        signup_username=error.values.get("username", ""),
    )


@router.get("/invite/{token}")
def invite(token: str, ctx: Public) -> Response:
    return invite_page(ctx, token)


@router.post("/invite/{token}")
def accept_invite(token: str, ctx: Public) -> Response:
    members.open_invite(ctx.db, token)  # a dead link fails (404) before any account is made
    values = {"username": ctx.value("username")}
    try:
        if ctx.principal is not None:
            user = ctx.principal.user
        else:
            if not ctx.settings.password_signin:
                raise Forbidden(f"{auth.PASSWORDS_OFF}, then open this link again")
            password = str(ctx.form.get("password") or "")
            if password != str(ctx.form.get("confirmPassword") or ""):
                raise Invalid("the two passwords differ", field="confirmPassword")
            user = auth.create_user(ctx.db, username=values["username"], password=password)
            _begin_session(ctx, user)
        inv, target = members.accept_invite(ctx.db, user, token)
        ctx.commit()
    except DomainError as e:
        ctx.rollback()
        ctx.cookies_out.clear()
        return invite_page(ctx, token, error=FormError.of("signup", e, values), status=e.status)
    kind = "project" if isinstance(target, Project) else "community"
    return redirect(
        ctx,
        _target_url(target),
        flash=f"Welcome: you have the {forms.role_label(inv.role)} role on {kind} {target.name}.",
    )
