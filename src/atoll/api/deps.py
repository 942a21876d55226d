"""Per-request context: database session, the authenticated caller, CSRF for cookie sessions."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, TypeVar

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from atoll.capacity import Inventory
from atoll.domain import access, auth
from atoll.domain.access import Principal
from atoll.domain.secrets import SecretBox
from atoll.errors import Forbidden, Unauthenticated
from atoll.settings import Settings

if TYPE_CHECKING:
    from atoll.services import Services
from atoll.store.db import Database
from atoll.store.tables import WebSession

SESSION_COOKIE = auth.SESSION_COOKIE
CSRF_HEADER = auth.CSRF_HEADER
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
T = TypeVar("T")


@dataclass
class Ctx:
    db: Session
    settings: Settings
    principal: Principal | None
    web_session: WebSession | None
    request: Request

    @property
    def me(self) -> Principal:
        if self.principal is None:
            raise Unauthenticated("sign in or pass an API token (Authorization: Bearer …)")
        return self.principal

    @property
    def services(self) -> Services:
        svc: Services = self.request.app.state.services
        return svc

    @property
    def secret_box(self) -> SecretBox:
        box: SecretBox = self.request.app.state.secret_box
        return box

    @property
    def inventory(self) -> Inventory:
        inv: Inventory = self.request.app.state.inventory()
        return inv

    def commit(self, value: T) -> T:
        """Commit the unit of work and hand back `value` (the response body)."""
        self.db.commit()
        return value

    def commit_and_wake(self, value: T, controller: str) -> T:
        """Commit, and have ``controller`` act on the change now rather than at its next tick
        (e.g. "dataplane": a new alias or token works at once, a revoked token stops at once)."""
        self.db.commit()
        self.services.wake(controller)
        return value


def identify(db: Session, request: Request) -> tuple[Principal | None, WebSession | None]:
    """Who is calling: a bearer token, else a session cookie (which then needs CSRF on writes)."""
    return access.identify(db, request.headers.get("authorization"), request.cookies.get(SESSION_COOKIE))


def get_ctx(request: Request) -> Generator[Ctx, None, None]:
    database: Database = request.app.state.db
    db = database.session()
    try:
        principal, ws = identify(db, request)
        if ws is not None and request.method not in SAFE_METHODS:
            presented = request.headers.get(CSRF_HEADER)
            if not auth.csrf_matches(ws, presented):
                raise Forbidden(f"missing or wrong {CSRF_HEADER} header for a cookie-authenticated request")
        yield Ctx(
            db=db, settings=request.app.state.settings, principal=principal, web_session=ws, request=request
        )
    finally:
        db.rollback()
        db.close()


def get_waiting_ctx(request: Request) -> Iterator[Ctx]:
    """For routes that wait (long polls): the caller is identified, then the session lets go of
    its connection, so a thousand waiting requests do not hold a thousand (or exhaust the pool)."""
    inner = get_ctx(request)
    ctx = next(inner)
    ctx.db.rollback()
    try:
        yield ctx
    finally:
        inner.close()  # get_ctx's own clean-up


def get_anonymous_ctx(request: Request) -> Iterator[Ctx]:
    """For routes that authenticate by credentials in the body (sign-in, token login): any
    session cookie the browser still holds is ignored, so it neither helps nor needs CSRF."""
    database: Database = request.app.state.db
    db = database.session()
    try:
        yield Ctx(
            db=db, settings=request.app.state.settings, principal=None, web_session=None, request=request
        )
    finally:
        db.rollback()
        db.close()


CtxDep = Annotated[Ctx, Depends(get_ctx)]
WaitingCtxDep = Annotated[Ctx, Depends(get_waiting_ctx)]
AnonCtxDep = Annotated[Ctx, Depends(get_anonymous_ctx)]
