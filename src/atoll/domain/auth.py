"""Accounts, browser sessions and personal API tokens.

Passwords are argon2 hashes. Session cookies and API tokens are random strings of which only
the sha256 is stored, so a database dump gives no way in.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from atoll.domain import throttle
from atoll.domain.passwords import MIN_LENGTH, check_password
from atoll.domain.validation import check_username
from atoll.errors import Conflict, Forbidden, Invalid, NotFound, Unauthenticated
from atoll.store.tables import ApiToken, User, WebSession, as_utc, utcnow

TOKEN_PREFIX = "atl_"  # noqa: S105 - a prefix, not a secret
SESSION_COOKIE = "atoll_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"  # form field name for plain HTML form posts
MIN_PASSWORD = MIN_LENGTH
PASSWORDS_OFF = "password sign-in is turned off here: sign in with your organization's identity provider"
_hasher = PasswordHasher()
# Verified against when the user does not exist, so timing does not reveal usernames.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def hash_password(
    password: str, *, username: str = "", user_inputs: tuple[str, ...] = (), field: str = "password"
) -> str:
    """The hash to store, once the password passes the policy (domain/passwords.py)."""
    check_password(password, username=username, user_inputs=user_inputs, field=field)
    return _hasher.hash(password)


def verify_password(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored or _DUMMY_HASH, password) and bool(stored)
    except (VerificationError, InvalidHashError):
        return False


def create_user(
    db: Session,
    *,
    username: str,
    password: str,
    email: str = "",
    display_name: str = "",
    is_admin: bool = False,
) -> User:
    check_username(username)
    if db.scalar(select(User.id).where(User.username == username)):
        raise Conflict(f"username {username!r} is taken", field="username")
    user = User(
        username=username,
        email=email,
        display_name=display_name or username,
        password_hash=hash_password(password, username=username, user_inputs=(email, display_name)),
        is_admin=is_admin,
    )
    db.add(user)
    db.flush()
    return user


def authenticate(
    db: Session, username: str, password: str, guard: throttle.Guard, *, passwords_on: bool = True
) -> User:
    """The user these credentials belong to. Within the sign-in limits (domain/throttle.py): while
    the account or the address is locked out, TooManyRequests before the password is looked at.
    ``passwords_on`` False (ATOLL_PASSWORD_SIGNIN=false): only installation admins may still sign
    in with a password, the way back in while the identity provider is down."""
    attempt = throttle.admit(db, guard, username)
    user = db.scalar(select(User).where(User.username == username))
    if not passwords_on and not (user is not None and user.is_admin):
        # Refused before the password is looked at: the answer says nothing of whether it was right.
        throttle.failed(db, attempt)
        raise Forbidden(PASSWORDS_OFF)
    ok = verify_password(user.password_hash if user else "", password)
    if not user or not ok or not user.is_active:
        throttle.failed(db, attempt)
        raise Unauthenticated("wrong username or password")
    throttle.succeeded(db, attempt)
    return user


def change_password(
    db: Session,
    user: User,
    old: str,
    new: str,
    guard: throttle.Guard,
    keep_session_id: str | None = None,
) -> None:
    """Change the password and end the user's other browser sessions (API tokens stay valid).

    The current password is checked within the sign-in limits too: a stolen session must not
    become a way to guess it."""
    if not user.password_hash:
        raise Invalid(
            "this account signs in through single sign-on and has no password to change",
            field="currentPassword",
        )
    attempt = throttle.admit(db, guard, user.username)
    if not verify_password(user.password_hash, old):
        throttle.failed(db, attempt)
        raise Invalid("current password is wrong", field="currentPassword")
    throttle.succeeded(db, attempt)
    user.password_hash = hash_password(
        new, username=user.username, user_inputs=(user.email, user.display_name), field="newPassword"
    )
    # Whoever held an old session with the old password is signed out (this one stays).
    q = db.query(WebSession).filter(WebSession.user_id == user.id)
    if keep_session_id:
        q = q.filter(WebSession.id != keep_session_id)
    q.delete()


# --- browser sessions -----------------------------------------------------------------------


@dataclass
class NewSession:
    cookie: str
    csrf_token: str
    session: WebSession


def start_session(db: Session, user: User, ttl_hours: int, *, provider_id: str | None = None) -> NewSession:
    """``provider_id``: the session came through that identity provider (ended by an SSO sign-out)."""
    raw = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24)
    ws = WebSession(
        user_id=user.id,
        provider_id=provider_id,
        token_hash=sha256(raw),
        csrf_token=csrf,
        expires_at=utcnow() + timedelta(hours=ttl_hours),
    )
    db.add(ws)
    db.flush()
    return NewSession(cookie=raw, csrf_token=csrf, session=ws)


def session_from_cookie(db: Session, cookie: str) -> tuple[WebSession, User] | None:
    ws = db.scalar(select(WebSession).where(WebSession.token_hash == sha256(cookie)))
    if ws is None or as_utc(ws.expires_at) < utcnow():
        return None
    user = db.get(User, ws.user_id)
    if user is None or not user.is_active:
        return None
    return ws, user


def end_session(db: Session, ws: WebSession) -> None:
    db.delete(ws)


def csrf_matches(ws: WebSession, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(ws.csrf_token, presented or "")


# --- personal API tokens ----------------------------------------------------------------------


def create_token(
    db: Session, user: User, name: str, expires_in_days: int | None, *, project_id: str | None = None
) -> tuple[ApiToken, str]:
    """Returns the row and the token itself — the only time the token is ever visible.
    ``project_id``: the token opens that project's JupyterLab only (an external IDE link)."""
    if not name or len(name) > 64:
        raise Invalid("name must be 1-64 characters", field="name")
    if expires_in_days is not None and not 1 <= expires_in_days <= 3650:
        raise Invalid("expiresInDays must be between 1 and 3650", field="expiresInDays")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    tok = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=sha256(raw),
        prefix=raw[:10],
        expires_at=utcnow() + timedelta(days=expires_in_days) if expires_in_days else None,
        project_id=project_id,
    )
    db.add(tok)
    db.flush()
    return tok, raw


class WrongScope(Exception):
    """A project-scoped token (an external IDE link) used anywhere but its project's JupyterLab."""


def user_from_token(db: Session, raw: str, project_id: str | None = None) -> User | None:
    """The token's user while it is valid, else None. A token scoped to a project (an external
    IDE link) is valid only for ``project_id`` equal to it: elsewhere it raises WrongScope."""
    tok = db.scalar(select(ApiToken).where(ApiToken.token_hash == sha256(raw)))
    if tok is None or tok.revoked_at is not None:
        return None
    if tok.project_id is not None and tok.project_id != project_id:
        raise WrongScope(tok.project_id)
    now = utcnow()
    if tok.expires_at is not None and as_utc(tok.expires_at) < now:
        return None
    user = db.get(User, tok.user_id)
    if user is None or not user.is_active:
        return None
    # Coarse last-use stamp: one write a minute at most, not one per request.
    if tok.last_used_at is None or now - as_utc(tok.last_used_at) > timedelta(minutes=1):
        tok.last_used_at = now
    return user


def revoke_token(db: Session, user: User, token_id: str) -> ApiToken:
    tok = db.get(ApiToken, token_id)
    if tok is None or tok.user_id != user.id:
        raise NotFound(f"token {token_id!r} not found")
    if tok.revoked_at is None:
        tok.revoked_at = utcnow()
    return tok


def token_state(tok: ApiToken) -> str:
    if tok.revoked_at is not None:
        return "REVOKED"
    if tok.expires_at is not None and as_utc(tok.expires_at) < utcnow():
        return "EXPIRED"
    return "ACTIVE"
