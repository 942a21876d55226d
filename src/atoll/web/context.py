"""Per-request context for the web UI: who is signed in, CSRF, rendering, and error pages.

Pages call the domain directly (web → domain → store). Each request gets its own database
session, closed (and rolled back unless a route committed) when the request ends.

CSRF: a signed-in browser must send the session's token on every unsafe request, either as
the `X-CSRF-Token` header (htmx sends it from `hx-headers` on <body>) or as the hidden form
field `csrf_token`. Forms posted before there is a session (sign in, accept an invite by
creating an account) use a double-submit token kept in a separate cookie.
"""

from __future__ import annotations

import dataclasses
import hmac
import secrets
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import jinja2
from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from atoll import __version__
from atoll.domain import audit, auth
from atoll.domain.access import Principal, load_principal
from atoll.errors import DomainError, NotFound
from atoll.settings import Settings
from atoll.states import NodeStatus, NotebookState
from atoll.store.tables import WebSession
from atoll.web import forms

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PRESESSION_COOKIE = "atoll_presession"  # double-submit CSRF for forms posted before sign-in
FLASH_COOKIE = "atoll_flash"  # one-shot message after a redirect (post/redirect/get)
TEMPLATES = Path(__file__).with_name("templates")

env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
env.globals.update(
    version=__version__,
    CSRF_FIELD=auth.CSRF_FIELD,
    CSRF_HEADER=auth.CSRF_HEADER,
    role_label=forms.role_label,
    duration=forms.format_duration,
    when=forms.format_when,
    units=forms.format_units,
    NodeStatus=NodeStatus,  # templates compare states by name, as the code does
    NotebookState=NotebookState,
)


class LoginRequired(Exception):
    """The page needs a signed-in user; the route class turns this into a redirect to /login."""


class CsrfRefused(Exception):
    pass


@dataclass
class WebCtx:
    request: Request
    db: Session
    settings: Settings
    principal: Principal | None
    web_session: WebSession | None
    # Plain copies for templates and error pages: ORM rows expire when the session closes.
    username: str = ""
    is_admin: bool = False
    csrf: str = ""
    set_presession: str | None = None
    flash: str | None = None
    cookies_out: list[tuple[str, str, int]] = dataclasses.field(default_factory=list)

    @property
    def me(self) -> Principal:
        if self.principal is None:
            raise LoginRequired
        return self.principal

    @property
    def htmx(self) -> bool:
        return self.request.headers.get("HX-Request") == "true"

    def hx_target(self, target: str) -> bool:
        """Is this an htmx request that wants only the element `target` back?"""
        return self.htmx and self.request.headers.get("HX-Target") == target

    @property
    def form(self) -> FormData:
        data: FormData = getattr(self.request.state, "form", None) or FormData()
        return data

    def value(self, name: str, default: str = "") -> str:
        v = self.form.get(name)
        return v.strip() if isinstance(v, str) else default

    def values(self, name: str) -> list[str]:
        return [v for v in self.form.getlist(name) if isinstance(v, str)]

    @property
    def inventory(self) -> Any:
        return self.request.app.state.inventory()

    @property
    def secure_cookies(self) -> bool:
        return self.settings.cookies_secure_for(self.request.url.scheme)

    @property
    def public_base(self) -> str:
        """The URL users reach us at: ATOLL_PUBLIC_URL, else what this browser used."""
        return self.settings.public_url.rstrip("/") or str(self.request.base_url).rstrip("/")

    def commit(self, wake: str = "") -> None:
        """Commit; with ``wake``, have that controller act on the change now (api/deps.Ctx's
        commit_and_wake)."""
        self.db.commit()
        if wake:
            self.request.app.state.services.wake(wake)

    def rollback(self) -> None:
        self.db.rollback()


def _presented_csrf(request: Request) -> str | None:
    header = request.headers.get(auth.CSRF_HEADER)
    if header:
        return header
    form = getattr(request.state, "form", None)
    value = form.get(auth.CSRF_FIELD) if form is not None else None
    return value if isinstance(value, str) else None


def _open(request: Request) -> tuple[Session, WebCtx]:
    db: Session = request.app.state.db.session()
    principal = None
    ws = None
    cookie = request.cookies.get(auth.SESSION_COOKIE)
    if cookie:
        found = auth.session_from_cookie(db, cookie)
        if found is not None:
            ws, user = found
            principal = load_principal(db, user)
            audit.note_actor(user.id, user.username, "session")
    ctx = WebCtx(
        request=request,
        db=db,
        settings=request.app.state.settings,
        principal=principal,
        web_session=ws,
    )
    if principal is not None and ws is not None:
        ctx.username = principal.user.username
        ctx.is_admin = principal.is_admin
        ctx.csrf = ws.csrf_token
    else:
        pre = request.cookies.get(PRESESSION_COOKIE) or ""
        if len(pre) < 20:
            pre = secrets.token_urlsafe(24)
            ctx.set_presession = pre
        ctx.csrf = pre
    raw_flash = request.cookies.get(FLASH_COOKIE)
    if raw_flash and request.method in SAFE_METHODS:
        ctx.flash = unquote(raw_flash)[:300]
    # What error pages need to draw the top bar, without touching the (closed) session.
    request.state.web_user = (ctx.username, ctx.csrf)
    return db, ctx


def _check_csrf(ctx: WebCtx) -> None:
    if ctx.request.method in SAFE_METHODS:
        return
    presented = _presented_csrf(ctx.request)
    if ctx.web_session is not None:
        if not auth.csrf_matches(ctx.web_session, presented):
            raise CsrfRefused
        return
    pre = ctx.request.cookies.get(PRESESSION_COOKIE) or ""
    if not (pre and presented and hmac.compare_digest(pre, presented)):
        raise CsrfRefused


def signed_in(request: Request) -> Iterator[WebCtx]:
    """Dependency for pages that need a user: redirect to /login without one, check CSRF on writes."""
    db, ctx = _open(request)
    try:
        if ctx.principal is None:
            raise LoginRequired
        _check_csrf(ctx)
        yield ctx
    finally:
        db.rollback()
        db.close()


def public(request: Request) -> Iterator[WebCtx]:
    """Dependency for pages anyone may open (sign-in, invite links); still CSRF-checked on writes."""
    db, ctx = _open(request)
    try:
        _check_csrf(ctx)
        yield ctx
    finally:
        db.rollback()
        db.close()


# --- rendering ------------------------------------------------------------------------------


def _finish(ctx: WebCtx, response: Response) -> Response:
    if ctx.set_presession:
        response.set_cookie(
            PRESESSION_COOKIE,
            ctx.set_presession,
            httponly=True,
            samesite="lax",
            secure=ctx.secure_cookies,
            path="/",
        )
    if ctx.flash is not None and ctx.request.method in SAFE_METHODS:
        response.delete_cookie(FLASH_COOKIE, path="/")
    for name, value, max_age in ctx.cookies_out:
        response.set_cookie(
            name, value, max_age=max_age, httponly=True, samesite="lax", secure=ctx.secure_cookies, path="/"
        )
    return response


def render(ctx: WebCtx, template: str, status: int = 200, **values: Any) -> Response:
    values.setdefault("flash", ctx.flash)
    values.setdefault("crumbs", [])
    html = env.get_template(template).render(
        username=ctx.username,
        is_admin=ctx.is_admin,
        csrf=ctx.csrf,
        path=ctx.request.url.path,
        **values,
    )
    return _finish(ctx, HTMLResponse(html, status_code=status))


def redirect(ctx: WebCtx, url: str, flash: str | None = None) -> Response:
    """Post/redirect/get. htmx gets HX-Redirect so the browser loads the whole new page."""
    response: Response
    if ctx.htmx:
        response = Response(status_code=204, headers={"HX-Redirect": url})
    else:
        response = RedirectResponse(url, status_code=303)
    if flash:
        response.set_cookie(FLASH_COOKIE, quote(flash), max_age=60, httponly=True, samesite="lax", path="/")
    return _finish(ctx, response)


def safe_next(value: str | None) -> str:
    """Only same-site paths: never `//evil.example` or `https://…`."""
    if not value or not value.startswith("/") or value.startswith("//") or value.startswith("/\\"):
        return "/"
    return value


def error_page(request: Request, status: int, title: str, detail: str) -> Response:
    """The HTML error page (also used by the app for unknown non-API paths)."""
    username, csrf = getattr(request.state, "web_user", ("", ""))
    html = env.get_template("error.html").render(
        username=username,
        is_admin=False,
        csrf=csrf,
        path=request.url.path,
        flash=None,
        crumbs=[],
        status=status,
        title=title,
        detail=detail,
    )
    headers = {}
    if request.headers.get("HX-Request") == "true":
        # A fragment request failed as a whole: show the error in place of the page body.
        headers = {"HX-Retarget": "#main", "HX-Reswap": "innerHTML", "HX-Push-Url": "false"}
        html = env.get_template("error_body.html").render(status=status, title=title, detail=detail)
    return HTMLResponse(html, status_code=status, headers=headers)


class WebRoute(APIRoute):
    """Reads form bodies up front (for the CSRF field) and turns failures into HTML pages."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            if request.method not in SAFE_METHODS:
                ctype = request.headers.get("content-type", "")
                if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
                    request.state.form = await request.form()
            try:
                return await original(request)
            except LoginRequired:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                if request.method not in SAFE_METHODS:
                    # Come back to the page the form was on, not to the form's POST address.
                    ref = urlsplit(request.headers.get("referer", ""))
                    same = ref.netloc == request.url.netloc
                    target = (ref.path + (f"?{ref.query}" if ref.query else "")) if same else "/"
                target = safe_next(target)
                url = f"/login?next={quote(target, safe='')}"
                if request.headers.get("HX-Request") == "true":
                    return Response(status_code=204, headers={"HX-Redirect": url})
                return RedirectResponse(url, status_code=303)
            except CsrfRefused:
                return error_page(
                    request,
                    403,
                    "Request refused",
                    "The form was missing its security token or it did not match your session. "
                    "Reload the page and try again.",
                )
            except NotFound as e:
                return error_page(request, 404, "Not found", e.detail)
            except DomainError as e:
                return error_page(request, e.status, e.title, e.detail)

        return handler


@dataclass
class FormError:
    """A domain error tied to the form that caused it, to draw it next to the right input."""

    form: str
    field: str | None
    message: str
    values: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, form: str, exc: DomainError, values: dict[str, Any] | None = None) -> FormError:
        return cls(form, exc.field, exc.detail, values or {})

    def on(self, form: str, name: str) -> str:
        """The message if it concerns input `name` of `form` (``labels`` matches ``labels.team``)."""
        if self.form != form or not self.field:
            return ""
        f = self.field
        if f == name or f.startswith(name + ".") or f.startswith(name + "["):
            return self.message
        return ""

    def general(self, form: str, names: list[str]) -> str:
        """The message if it belongs to `form` but to none of the inputs listed."""
        if self.form != form:
            return ""
        if any(self.on(form, n) for n in names):
            return ""
        return self.message


env.globals["no_error"] = FormError("", None, "")
