"""The browser's side of a single sign-on: off to the provider, and back.

GET  /login/sso/<name>           records the sign-in in flight, marks this browser with a cookie,
                                 redirects to the provider
GET  /login/sso/<name>/callback  the provider's answer, taken only in the browser that started
                                 it: checks it and signs the user in, or shows why not on the
                                 sign-in page; for `atoll login --sso`, asks first whether the CLI
                                 on this machine may sign in
POST /login/sso/cli              that answer: a one-time code to the CLI's loopback port

Every return is one audit record, success or failure, with the reason.
"""

from __future__ import annotations

import re
import secrets
from typing import Annotated
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from sqlalchemy import select

from atoll.domain import audit, auth, sso_accounts, sso_providers
from atoll.errors import DomainError, Invalid, Unauthenticated
from atoll.identity import oidc
from atoll.store.tables import Organization, SsoSignIn, User, as_utc, utcnow
from atoll.web.context import FormError, WebCtx, WebRoute, public, redirect, render, safe_next
from atoll.web.pages_auth import login_page_for

router = APIRouter(route_class=WebRoute, include_in_schema=False)
Public = Annotated[WebCtx, Depends(public)]
_CLI_STATE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
BROWSER_COOKIE = "atoll_sso_browser"


def _refused(ctx: WebCtx, nxt: str, e: DomainError, action: str = "sign_in_sso") -> Response:
    ctx.rollback()
    audit.note_action(action, record=True, detail=e.detail)
    return login_page_for(ctx, nxt, error=FormError("sso", None, e.detail), status=e.status)


def _to_cli(ctx: WebCtx, row: SsoSignIn, **answer: str) -> Response:
    query = urlencode({**answer, "state": row.cli_state})
    return redirect(ctx, f"http://127.0.0.1:{row.cli_port}/callback?{query}")


@router.get("/login/sso/{name}")
def sso_start(
    name: str,
    ctx: Public,
    next: Annotated[str, Query(max_length=1024)] = "/",
    cli_port: Annotated[int | None, Query(ge=1024, le=65535)] = None,
    cli_state: Annotated[str, Query(max_length=128)] = "",
    cli_challenge: Annotated[str, Query(max_length=128)] = "",
) -> Response:
    """Off to the provider. With ``cli_*``: a sign-in `atoll login --sso` started, whose code goes
    back to the CLI on this machine's loopback."""
    nxt = safe_next(next)
    public = urlsplit(ctx.settings.base_url)
    if ctx.request.url.netloc.lower() != public.netloc.lower():
        # The provider comes back to the public URL: start there, so that this browser's mark
        # (a cookie) is on the host the answer arrives at. Hosts only are compared: behind a
        # proxy that does not say it spoke https, comparing schemes too would redirect forever.
        query = f"?{ctx.request.url.query}" if ctx.request.url.query else ""
        return redirect(ctx, f"{ctx.settings.base_url}{ctx.request.url.path}{query}")
    try:
        provider = sso_providers.enabled(ctx.db, name[:63])
        audit.note_target(ctx.db.get(Organization, provider.organization_id))  # whose log
        cli = None
        if cli_port is not None:
            if not _CLI_STATE.match(cli_state) or not _CLI_STATE.match(cli_challenge):
                raise Invalid(
                    "cli_state and cli_challenge must be 16-128 URL-safe characters", field="cli_state"
                )
            cli = oidc.CliReturn(cli_port, cli_state, cli_challenge)
        browser = ctx.request.cookies.get(BROWSER_COOKIE) or ""
        if len(browser) < 32:
            browser = secrets.token_urlsafe(32)
        ttl = ctx.settings.sso_sign_in_ttl_s
        url = oidc.start(
            ctx.db,
            ctx.request.app.state.secret_box,
            provider,
            sso_providers.redirect_uri(ctx.settings.base_url, provider.name),
            nxt,
            ttl,
            browser,
            cli,
        )
        ctx.cookies_out.append((BROWSER_COOKIE, browser, ttl))
        ctx.commit()
    except DomainError as e:
        return _refused(ctx, nxt, e)
    return redirect(ctx, url)


@router.get("/login/sso/{name}/callback")
def sso_callback(
    name: str,
    ctx: Public,
    state: Annotated[str, Query(max_length=512)] = "",
    code: Annotated[str, Query(max_length=2048)] = "",
    iss: Annotated[str | None, Query(max_length=512)] = None,
    error: Annotated[str, Query(max_length=256)] = "",
    error_description: Annotated[str, Query(max_length=512)] = "",
) -> Response:
    box = ctx.request.app.state.secret_box
    audit.note_action("sign_in_sso", record=True)
    nxt = "/"
    row: SsoSignIn | None = None
    try:
        provider = sso_providers.enabled(ctx.db, name[:63])
        audit.note_target(ctx.db.get(Organization, provider.organization_id))  # whose log
        row = oidc.take_sign_in(ctx.db, state, ctx.request.cookies.get(BROWSER_COOKIE) or "")
        nxt = row.next_url
        ctx.commit()  # used, whatever comes next: the same answer is never taken twice
        if row.provider_id != provider.id:
            raise DomainError("this sign-in was started with another identity provider")
        if error:
            words = re.sub(r"[^\w .,:;'()/-]", "", error_description)[:200]
            raise DomainError(
                f"{provider.display_name} did not sign you in: {error[:64]}"
                + (f" ({words})" if words else "")
            )
        identity = oidc.finish(ctx.db, box, provider, row, code, iss)
        signed = sso_accounts.sign_in(ctx.db, provider, identity.subject, identity.claims)
        user = signed.user
        audit.note_actor(user.id, user.username, "sso")
        detail = f"through {provider.name}: {signed.summary()}"
        if row.cli_port is not None:
            ticket = secrets.token_urlsafe(32)
            row.user_id, row.confirm_hash = user.id, auth.sha256(ticket)
            audit.note_action("sign_in_sso", record=True, detail=detail + "; for the CLI, to be confirmed")
            ctx.commit()
            return render(ctx, "sso_cli.html", user=user, port=row.cli_port, ticket=ticket)
        new = auth.start_session(ctx.db, user, ctx.settings.session_ttl_hours, provider_id=provider.id)
        ctx.cookies_out.append((auth.SESSION_COOKIE, new.cookie, ctx.settings.session_ttl_hours * 3600))
        audit.note_action("sign_in_sso", record=True, detail=detail)
        ctx.commit()
    except DomainError as e:
        page = _refused(ctx, nxt, e)
        if row is not None and row.cli_port is not None:  # the CLI waits for an answer: it gets this one
            return _to_cli(ctx, row, error=e.detail[:400])
        return page
    return redirect(ctx, nxt)


@router.post("/login/sso/cli")
def sso_cli_confirm(ctx: Public) -> Response:
    """The person's answer: the CLI on their machine may sign in as them (or not)."""
    ticket = ctx.value("ticket")[:128]
    row = ctx.db.scalar(
        select(SsoSignIn).where(SsoSignIn.confirm_hash == auth.sha256(ticket)).with_for_update()
    )
    if row is None or row.user_id is None or row.cli_port is None or as_utc(row.expires_at) < utcnow():
        e = Unauthenticated("this CLI sign-in is unknown, answered or expired: run `atoll login --sso` again")
        return _refused(ctx, "/", e, "confirm_cli_sign_in")
    user = ctx.db.get(User, row.user_id)
    row.confirm_hash = None  # answered once
    if user is not None:
        audit.note_actor(user.id, user.username, "sso")
    audit.note_target(ctx.db.get(Organization, _provider_org(ctx, row.provider_id)))
    if ctx.value("answer") != "allow" or user is None:
        audit.note_action("confirm_cli_sign_in", detail="refused in the browser")
        ctx.commit()
        return _to_cli(ctx, row, error="the sign-in was refused in the browser")
    code = sso_accounts.issue_cli_code(row, user)
    audit.note_action("confirm_cli_sign_in", detail=f"the CLI on port {row.cli_port} may sign in")
    ctx.commit()
    return _to_cli(ctx, row, code=code)


def _provider_org(ctx: WebCtx, provider_id: str) -> str:
    provider = sso_providers.get(ctx.db, provider_id)
    return provider.organization_id
