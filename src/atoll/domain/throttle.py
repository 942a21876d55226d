"""Throttling of password guesses: failed checks counted per account name and per client address.

Every place a password is checked (sign-in for a session or a token, the web form, a password
change) goes through `admit` before the check and `failed` or `succeeded` after it:

- `admit` counts the attempt before the password is looked at, so attempts made at the same
  time cannot slip past the limit together; while the account or the address is locked out it
  refuses with TooManyRequests (429 + Retry-After) and the password is never verified.
- reaching the limit within the window locks the key out; each further lockout in a row lasts
  twice as long as the one before (up to a maximum), and a window without reaching the limit
  forgives earlier lockouts.
- a success clears the account's count; the address keeps its other failures (one valid
  account must not reset the count of an address that guesses at others).

Account names are counted whether or not such a user exists, so neither the answer nor its
timing tells which usernames are real; guesses at many names from one address meet the
address's limit.

The counts live in the database (table signin_throttles), not in memory: they survive a restart
and hold for every server process sharing the database. They are written in a transaction of
their own, because a failed sign-in rolls back the request's transaction.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from atoll.errors import TooManyRequests
from atoll.settings import Settings
from atoll.store.tables import SignInThrottle, as_utc, utcnow

log = logging.getLogger("atoll.signin")

ACCOUNT = "account"
ADDRESS = "address"
_MAX_SUBJECT = 128  # the column's width; longer names are stored by their hash


@dataclass(frozen=True)
class Limits:
    account_failures: int
    address_failures: int
    window: timedelta
    lockout: timedelta
    lockout_max: timedelta

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(
            account_failures=settings.signin_account_failures,
            address_failures=settings.signin_address_failures,
            window=timedelta(seconds=settings.signin_window_s),
            lockout=timedelta(seconds=settings.signin_lockout_s),
            lockout_max=timedelta(seconds=max(settings.signin_lockout_s, settings.signin_lockout_max_s)),
        )

    def failures(self, scope: str) -> int:
        return self.account_failures if scope == ACCOUNT else self.address_failures

    def lockout_for(self, lockouts: int) -> timedelta:
        """How long the `lockouts`-th lockout in a row lasts: doubling, up to lockout_max."""
        factor = 2 ** min(max(lockouts - 1, 0), 30)
        return min(self.lockout * factor, self.lockout_max)


@dataclass(frozen=True)
class Guard:
    """The limits, and the address a request comes from (as `address_key` gives it)."""

    limits: Limits
    address: str


@dataclass(frozen=True)
class Attempt:
    """One admitted password check, to be closed by `failed` or `succeeded`."""

    guard: Guard
    username: str
    keys: tuple[tuple[str, str], ...]


def address_key(host: str | None) -> str:
    """The key an address is counted under. IPv6 clients by their /64, which one machine usually
    holds whole; an IPv4-mapped address as the IPv4 one."""
    if not host:
        return "unknown"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return _subject(host)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def guard(settings: Settings, host: str | None) -> Guard:
    """The guard for a request from `host` (the client address the server saw)."""
    return Guard(Limits.of(settings), address_key(host))


def admit(db: Session, guard: Guard, username: str) -> Attempt:
    """Count a password check for `username` from the guard's address before it is made.

    Raises TooManyRequests while the account or the address is locked out (or already has as
    many checks under way or failed as its limit allows)."""
    limits = guard.limits
    keys = ((ACCOUNT, _subject(username)), (ADDRESS, guard.address))
    now = utcnow()
    refused: list[SignInThrottle] = []
    with _own_transaction(db) as s:
        rows = _rows(s, keys, now)
        for row in rows:
            _roll_window(row, now, limits)
        for row in rows:
            if not _locked(row, now) and row.failures >= limits.failures(row.scope):
                # Only reachable when checks overlap: the ones under way already fill the quota.
                _lock(row, now, limits)
            if _locked(row, now):
                refused.append(row)
        if not refused:
            for row in rows:
                row.failures += 1
                row.updated_at = now
        retry_after = max((_seconds_left(r, now) for r in refused), default=0)
        which = " and ".join(_describe(r.scope) for r in refused)
    if refused:
        log.info(
            "sign-in refused for %s from %s: locked out %s for %d s more",
            _shown(username),
            guard.address,
            which,
            retry_after,
        )
        raise TooManyRequests(
            f"too many failed sign-ins {which}; try again in {_human(retry_after)}",
            retry_after=retry_after,
        )
    return Attempt(guard, username, keys)


def failed(db: Session, attempt: Attempt) -> None:
    """The password was wrong (or the user unknown or disabled): lock out what reached its limit."""
    limits = attempt.guard.limits
    now = utcnow()
    locked: list[tuple[str, str, int, timedelta]] = []
    with _own_transaction(db) as s:
        for row in _rows(s, attempt.keys, now):
            row.updated_at = now
            if not _locked(row, now) and row.failures >= limits.failures(row.scope):
                duration = _lock(row, now, limits)
                locked.append((row.scope, row.subject, row.lockouts, duration))
        # Forget keys quiet for longer than any window and lockout: the table stays small.
        stale = now - limits.window - limits.lockout_max
        s.execute(delete(SignInThrottle).where(SignInThrottle.updated_at < stale))
    # WARNING, not INFO: `atoll up` shows warnings by default, and these are what an admin (or a
    # log watcher such as fail2ban) looks for.
    log.warning("sign-in failed for %s from %s", _shown(attempt.username), attempt.guard.address)
    for scope, subject, lockouts, duration in locked:
        log.warning(
            "sign-in locked out for %s %s for %d s (lockout %d in a row, after %d failures)",
            scope,
            _shown(subject) if scope == ACCOUNT else subject,
            duration.total_seconds(),
            lockouts,
            limits.failures(scope),
        )


def succeeded(db: Session, attempt: Attempt) -> None:
    """The password was right: the account starts afresh; the address loses this one attempt."""
    now = utcnow()
    with _own_transaction(db) as s:
        for row in _rows(s, attempt.keys, now):
            if row.scope == ADDRESS:
                row.failures = max(row.failures - 1, 0)
                row.updated_at = now
            if row.scope == ACCOUNT or (row.failures == 0 and row.lockouts == 0 and not _locked(row, now)):
                s.delete(row)


# --- the rows -------------------------------------------------------------------------------


@contextmanager
def _own_transaction(db: Session) -> Iterator[Session]:
    # A sibling session on the request's engine: the counts must be committed whatever becomes
    # of the request's own transaction (a failed sign-in rolls it back).
    with Session(db.get_bind(), expire_on_commit=False) as s, s.begin():
        yield s


def _rows(s: Session, keys: Sequence[tuple[str, str]], now: datetime) -> list[SignInThrottle]:
    """The rows of `keys`, created if missing, locked until the transaction ends.

    The insert comes first on purpose: on SQLite it takes the database's write lock, so the
    read that follows cannot go stale before the update; on PostgreSQL the rows are locked
    (FOR UPDATE), always in the same order, so concurrent checks wait for each other."""
    values = [
        {
            "scope": scope,
            "subject": subject,
            "failures": 0,
            "lockouts": 0,
            "window_start": now,
            "updated_at": now,
        }
        for scope, subject in keys
    ]
    dialect = s.get_bind().dialect.name
    if dialect == "postgresql":
        s.execute(pg_insert(SignInThrottle).values(values).on_conflict_do_nothing())
    elif dialect == "sqlite":
        s.execute(sqlite_insert(SignInThrottle).values(values).on_conflict_do_nothing())
    else:  # pragma: no cover - Atoll runs on SQLite and PostgreSQL only
        raise RuntimeError(f"sign-in throttling does not support {dialect}")
    query = (
        select(SignInThrottle)
        .where(tuple_(SignInThrottle.scope, SignInThrottle.subject).in_(list(keys)))
        .order_by(SignInThrottle.scope, SignInThrottle.subject)
        .with_for_update()
    )
    return list(s.scalars(query))


def _locked(row: SignInThrottle, now: datetime) -> bool:
    return row.locked_until is not None and as_utc(row.locked_until) > now


def _roll_window(row: SignInThrottle, now: datetime, limits: Limits) -> None:
    """A new window once the last one has run out without a lockout; that also forgives earlier
    lockouts, so the next one is short again."""
    if _locked(row, now) or now - as_utc(row.window_start) < limits.window:
        return
    row.failures = 0
    row.lockouts = 0
    row.window_start = now


def _lock(row: SignInThrottle, now: datetime, limits: Limits) -> timedelta:
    row.lockouts += 1
    duration = limits.lockout_for(row.lockouts)
    row.locked_until = now + duration
    # Counting starts again when the lockout ends; failing as much again locks it out for longer.
    row.window_start = row.locked_until
    row.failures = 0
    row.updated_at = now
    return duration


def _seconds_left(row: SignInThrottle, now: datetime) -> int:
    assert row.locked_until is not None
    return max(math.ceil((as_utc(row.locked_until) - now).total_seconds()), 1)


def _subject(value: str) -> str:
    if len(value) <= _MAX_SUBJECT:
        return value
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def _describe(scope: str) -> str:
    return "for this account" if scope == ACCOUNT else "from this address"


def _shown(username: str) -> str:
    # Logged as repr, cut short: a name is what the client typed, which may be anything.
    return repr(username[:64])


def _human(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minutes"
