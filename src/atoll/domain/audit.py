"""The audit log: one record for each thing someone did or tried (docs/access.md "Audit log").

Requests are recorded by one middleware (api/audit_log.py) for every state-changing call, the
web UI's forms included, and for the few reads that matter (an SSO sign-in's return, a notebook
opened). While a request runs, the code that knows something about it writes it on the request's
`Note`: who the caller is (access.identify), which resource it acts on (access.authorize), or a
better name for the action (sign-in routes). The rest of the system (a workload start that reads
secrets, group sync at sign-in) writes records itself with `record()`.

What a record holds is chosen so that no secret value or token can reach it: ids, names, the route
template (never the query string or body), the status, a short fixed-form detail.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, or_, select
from sqlalchemy.orm import Session

from atoll.errors import Invalid
from atoll.store.tables import (
    AccessBinding,
    AuditRecord,
    BillingAccount,
    Community,
    Group,
    GroupMember,
    Organization,
    Project,
    User,
    as_utc,
    utcnow,
)

SUCCESS, DENIED, FAILED = "success", "denied", "failed"
RESULTS = (SUCCESS, DENIED, FAILED)
MAX_DETAIL = 512


@dataclass
class Note:
    """What is known about the request in flight; the middleware turns it into one record."""

    actor_id: str | None = None
    actor: str = ""
    via: str = ""
    action: str = ""  # set: the record's action (else the route's endpoint name)
    organization_id: str | None = None
    resource_type: str = ""
    resource_id: str = ""
    detail: str = ""
    record: bool = False  # record this request even though its method is a safe one
    # A project's community, whose organization the writer looks up: only for the requests that
    # are recorded, not for every read that authorizes something.
    community_id: str | None = None


# The request's Note. A mutable object in a context variable: FastAPI runs sync code in worker
# threads with a copy of the context, and the copy still points at the same Note.
_CURRENT: contextvars.ContextVar[Note | None] = contextvars.ContextVar("atoll_audit_note", default=None)


def begin() -> tuple[Note, contextvars.Token[Note | None]]:
    note = Note()
    return note, _CURRENT.set(note)


def end(token: contextvars.Token[Note | None]) -> None:
    _CURRENT.reset(token)


def current() -> Note | None:
    return _CURRENT.get()


def note_actor(user_id: str, username: str, via: str) -> None:
    """The caller, as the request's credentials named them (the first identification wins)."""
    n = _CURRENT.get()
    if n is not None and n.actor_id is None:
        n.actor_id, n.actor, n.via = user_id, username, via


def note_attempt(db: Session, name: str, via: str) -> None:
    """The account a caller tries to sign in as: the record's actor even if the attempt fails (an
    existing account's organizations then see the failure; an unknown name stays a name)."""
    n = _CURRENT.get()
    if n is not None and n.actor_id is None:
        n.actor, n.via = name[:128], via
        n.actor_id = db.scalar(select(User.id).where(User.username == name[:64])) if name else None


def note_action(action: str, *, record: bool = False, detail: str = "") -> None:
    n = _CURRENT.get()
    if n is not None:
        n.action = action
        n.record = n.record or record
        if detail:
            n.detail = detail[:MAX_DETAIL]


def note_detail(detail: str) -> None:
    """A short fixed-form note for the record (names, ids, roles: never a value)."""
    n = _CURRENT.get()
    if n is not None:
        n.detail = detail[:MAX_DETAIL]


def note_target(resource: Any) -> None:
    """The resource the request acts on: the first one authorized (access.authorize calls this)."""
    n = _CURRENT.get()
    if n is None or n.resource_id or resource is None:
        return
    n.resource_id = str(resource.id)
    if isinstance(resource, Organization):
        n.resource_type, n.organization_id = "organization", resource.id
    elif isinstance(resource, Community | BillingAccount | Group):
        n.resource_type = {Community: "community", BillingAccount: "billingAccount", Group: "group"}[
            type(resource)
        ]
        n.organization_id = resource.organization_id
    elif isinstance(resource, Project):
        n.resource_type, n.community_id = "project", resource.community_id
    else:
        n.resource_type = type(resource).__name__.lower()


def organization_of(db: Session, note: Note) -> str | None:
    """The organization the noted resource belongs to (a project's: through its community)."""
    if note.organization_id is None and note.community_id is not None:
        return db.scalar(select(Community.organization_id).where(Community.id == note.community_id))
    return note.organization_id


def result_of(status: int) -> str:
    if status < 400:
        return SUCCESS
    if status in (401, 403, 404, 429):
        return DENIED
    return FAILED


def record(
    db: Session,
    *,
    action: str,
    result: str = SUCCESS,
    status: int = 0,
    organization_id: str | None = None,
    actor_id: str | None = None,
    actor: str = "",
    via: str = "",
    address: str = "",
    route: str = "",
    resource_type: str = "",
    resource_id: str = "",
    detail: str = "",
) -> AuditRecord:
    """Add one record to the session (the caller commits)."""
    row = AuditRecord(
        organization_id=organization_id,
        actor_id=actor_id,
        actor=actor[:128],
        via=via[:16],
        address=address[:64],
        action=action[:64],
        route=route[:256],
        resource_type=resource_type[:32],
        resource_id=resource_id[:64],
        result=result,
        status=status,
        detail=detail[:MAX_DETAIL],
    )
    db.add(row)
    return row


# --- reading --------------------------------------------------------------------------------


@dataclass
class Filters:
    actor: str | None = None  # a user id or a username
    action: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    result: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _members(org_id: str) -> Any:
    """Ids of the organization's members: bound to it directly or through one of its groups."""
    direct = select(AccessBinding.subject_id).where(
        AccessBinding.resource_type == "organization",
        AccessBinding.resource_id == org_id,
        AccessBinding.subject_type == "user",
    )
    groups = select(AccessBinding.subject_id).where(
        AccessBinding.resource_type == "organization",
        AccessBinding.resource_id == org_id,
        AccessBinding.subject_type == "group",
    )
    via_groups = select(GroupMember.user_id).where(GroupMember.group_id.in_(groups))
    return direct.union(via_groups)


def query(org_id: str | None, f: Filters) -> Select[Any]:
    """The organization's records: those about its resources, and those tied to no organization
    (a password sign-in, an own token) whose actor is one of its members. ``org_id`` None: every
    record of the installation (installation admins)."""
    if f.result is not None and f.result not in RESULTS:
        raise Invalid(f"result must be one of {', '.join(RESULTS)}", field="result")
    if f.since and f.until and f.since > f.until:
        raise Invalid("since is after until", field="since")
    q = select(AuditRecord)
    if org_id is not None:
        q = q.where(
            or_(
                AuditRecord.organization_id == org_id,
                (AuditRecord.organization_id.is_(None)) & AuditRecord.actor_id.in_(_members(org_id)),
            )
        )
    if f.actor:
        q = q.where(or_(AuditRecord.actor_id == f.actor, AuditRecord.actor == f.actor))
    if f.action:
        q = q.where(AuditRecord.action == f.action)
    if f.resource_type:
        q = q.where(AuditRecord.resource_type == f.resource_type)
    if f.resource_id:
        q = q.where(AuditRecord.resource_id == f.resource_id)
    if f.result:
        q = q.where(AuditRecord.result == f.result)
    if f.since:
        q = q.where(AuditRecord.created_at >= f.since)
    if f.until:
        q = q.where(AuditRecord.created_at < f.until)
    return q


def as_dict(r: AuditRecord) -> dict[str, Any]:
    """A record as the API, the export and the CLI show it (camelCase, ISO times)."""
    return {
        "id": r.id,
        "time": as_utc(r.created_at).isoformat(),
        "organizationId": r.organization_id,
        "actorId": r.actor_id,
        "actor": r.actor,
        "via": r.via,
        "address": r.address,
        "action": r.action,
        "route": r.route,
        "resourceType": r.resource_type,
        "resourceId": r.resource_id,
        "result": r.result,
        "status": r.status,
        "detail": r.detail,
    }


def newest(
    db: Session, org_id: str | None, f: Filters, limit: int, before: str | None = None
) -> tuple[list[AuditRecord], str | None]:
    """Up to ``limit`` records, newest first, older than record ``before``; and the id to ask the
    next page with (None: no more). For the web page; the API pages with its cursor tokens."""
    q = query(org_id, f).order_by(AuditRecord.created_at.desc(), AuditRecord.id.desc())
    if before:
        mark = db.get(AuditRecord, before)
        if mark is None:
            raise Invalid("that page of the audit log is gone (older records were removed)", field="page")
        q = q.where(
            or_(
                AuditRecord.created_at < mark.created_at,
                (AuditRecord.created_at == mark.created_at) & (AuditRecord.id < mark.id),
            )
        )
    rows: list[AuditRecord] = list(db.scalars(q.limit(limit + 1)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more and rows else None)


def export(db: Session, org_id: str | None, f: Filters, batch: int = 500) -> Iterator[AuditRecord]:
    """Every matching record, oldest first, read in batches (an export may be large)."""
    last: tuple[datetime, str] | None = None
    while True:
        q = query(org_id, f).order_by(AuditRecord.created_at, AuditRecord.id).limit(batch)
        if last is not None:
            q = q.where(
                or_(
                    AuditRecord.created_at > last[0],
                    (AuditRecord.created_at == last[0]) & (AuditRecord.id > last[1]),
                )
            )
        rows: list[AuditRecord] = list(db.scalars(q).all())
        yield from rows
        if len(rows) < batch:
            return
        last = (rows[-1].created_at, rows[-1].id)


def prune(db: Session, retention_days: int) -> int:
    """Remove records older than the retention; 0 days keeps them forever."""
    if retention_days <= 0:
        return 0
    cut = utcnow() - timedelta(days=retention_days)
    result = db.execute(delete(AuditRecord).where(AuditRecord.created_at < cut))
    return int(getattr(result, "rowcount", 0) or 0)
