"""Role bindings, groups, organization membership and invite links (spec §2)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, select, update
from sqlalchemy.orm import Session

from atoll.domain import access
from atoll.domain.access import (
    MANAGE_ACTION,
    ROLES,
    VIEW_ACTION,
    Action,
    Principal,
    Rank,
    Resource,
    ResourceType,
)
from atoll.domain.auth import sha256
from atoll.domain.validation import check_description, check_name
from atoll.errors import Conflict, Invalid, NotFound
from atoll.store.tables import (
    AccessBinding,
    BillingAccount,
    Community,
    Group,
    GroupMember,
    Invite,
    Organization,
    Project,
    User,
    as_utc,
    utcnow,
)

_MODELS: dict[ResourceType, type[Organization | Community | Project | BillingAccount]] = {
    ResourceType.ORGANIZATION: Organization,
    ResourceType.COMMUNITY: Community,
    ResourceType.PROJECT: Project,
    ResourceType.BILLING_ACCOUNT: BillingAccount,
}


def resource_type_of(resource: Resource) -> ResourceType:
    for rtype, model in _MODELS.items():
        if isinstance(resource, model):
            return rtype
    raise TypeError(type(resource).__name__)


def load_resource(
    db: Session, p: Principal, rtype: ResourceType, rid: str, *, manage: bool = False
) -> Organization | Community | Project | BillingAccount:
    obj = cast(Organization | Community | Project | BillingAccount | None, db.get(_MODELS[rtype], rid))
    if obj is None:
        raise NotFound(f"{rtype.value} {rid!r} not found")
    access.authorize(db, p, (MANAGE_ACTION if manage else VIEW_ACTION)[rtype], obj)
    return obj


def organization_id_of(db: Session, resource: Resource) -> str:
    if isinstance(resource, Organization):
        return resource.id
    if isinstance(resource, Project):
        c = db.get(Community, resource.community_id)
        assert c is not None
        return c.organization_id
    return resource.organization_id


def find_user(db: Session, ref: str, field: str = "user") -> User:
    user = db.get(User, ref) or db.scalar(select(User).where(User.username == ref))
    if user is None:
        raise Invalid(f"user {ref!r} not found", field=field)
    return user


def is_org_member(db: Session, org_id: str, user_id: str) -> bool:
    return bool(
        db.scalar(
            select(AccessBinding.id).where(
                AccessBinding.resource_type == ResourceType.ORGANIZATION.value,
                AccessBinding.resource_id == org_id,
                AccessBinding.subject_type == "user",
                AccessBinding.subject_id == user_id,
            )
        )
    )


# --- bindings -------------------------------------------------------------------------------


@dataclass
class Subject:
    type: str  # "user" | "group"
    id: str
    name: str


def subject_name(db: Session, b: AccessBinding) -> str:
    if b.subject_type == "group":
        g = db.get(Group, b.subject_id)
        return g.name if g else b.subject_id
    u = db.get(User, b.subject_id)
    return u.username if u else b.subject_id


def list_bindings(db: Session, p: Principal, rtype: ResourceType, rid: str) -> list[AccessBinding]:
    load_resource(db, p, rtype, rid)
    q = (
        select(AccessBinding)
        .where(AccessBinding.resource_type == rtype.value, AccessBinding.resource_id == rid)
        .order_by(AccessBinding.created_at, AccessBinding.id)
    )
    return list(db.scalars(q))


def _subject(db: Session, org_id: str, rtype: ResourceType, subject_type: str, ref: str) -> Subject:
    if subject_type == "group":
        g = db.get(Group, ref) or db.scalar(
            select(Group).where(Group.organization_id == org_id, Group.name == ref)
        )
        if g is None or g.organization_id != org_id:
            raise Invalid(f"group {ref!r} not found in this organization", field="subject")
        return Subject("group", g.id, g.name)
    if subject_type != "user":
        raise Invalid("subjectType must be 'user' or 'group'", field="subjectType")
    user = find_user(db, ref, field="subject")
    if rtype is not ResourceType.ORGANIZATION and not is_org_member(db, org_id, user.id):
        raise Invalid(
            f"user {user.username!r} is not a member of this organization: "
            "give them the organization role 'member' first",
            field="subject",
        )
    return Subject("user", user.id, user.username)


def set_binding(
    db: Session, p: Principal, rtype: ResourceType, rid: str, *, subject_type: str, subject: str, role: str
) -> AccessBinding:
    """Give a user or group `role` on the resource, replacing the role they had there."""
    resource = load_resource(db, p, rtype, rid, manage=True)
    if role not in ROLES[rtype]:
        raise Invalid(
            f"role must be one of {', '.join(ROLES[rtype])} on a {rtype.value} (got {role!r})", field="role"
        )
    subj = _subject(db, organization_id_of(db, resource), rtype, subject_type, subject)
    existing = list(
        db.scalars(
            select(AccessBinding).where(
                AccessBinding.resource_type == rtype.value,
                AccessBinding.resource_id == rid,
                AccessBinding.subject_id == subj.id,
            )
        )
    )
    for b in existing:
        if b.role == role:
            return b
    if rtype is ResourceType.ORGANIZATION and any(b.role == "admin" for b in existing):
        _guard_last_org_admin(db, rid, subj.id)
    for b in existing:
        db.delete(b)
    binding = AccessBinding(
        resource_type=rtype.value,
        resource_id=rid,
        subject_type=subj.type,
        subject_id=subj.id,
        role=role,
        created_by=p.user.id,
    )
    db.add(binding)
    db.flush()
    return binding


def _guard_last_org_admin(db: Session, org_id: str, subject_id: str) -> None:
    admins = db.scalar(
        select(func.count()).where(
            AccessBinding.resource_type == ResourceType.ORGANIZATION.value,
            AccessBinding.resource_id == org_id,
            AccessBinding.role == "admin",
            AccessBinding.subject_id != subject_id,
        )
    )
    if not admins:
        raise Conflict("the organization would be left without an admin")


def remove_binding(db: Session, p: Principal, rtype: ResourceType, rid: str, binding_id: str) -> None:
    load_resource(db, p, rtype, rid, manage=True)
    b = db.get(AccessBinding, binding_id)
    if b is None or b.resource_type != rtype.value or b.resource_id != rid:
        raise NotFound(f"access binding {binding_id!r} not found")
    if rtype is ResourceType.ORGANIZATION:
        if b.role == "admin":
            _guard_last_org_admin(db, rid, b.subject_id)
        if b.subject_type == "user":
            # Leaving the organization drops the user's groups there.
            gids = select(Group.id).where(Group.organization_id == rid)
            db.execute(
                delete(GroupMember).where(GroupMember.user_id == b.subject_id, GroupMember.group_id.in_(gids))
            )
    db.delete(b)


# --- groups ---------------------------------------------------------------------------------


def create_group(
    db: Session, p: Principal, *, organization_id: str, name: str, description: str = ""
) -> Group:
    org = db.get(Organization, organization_id)
    if org is None or not access.can(db, p, Action.ORG_VIEW, org):
        raise Invalid(f"organization {organization_id!r} not found", field="organizationId")
    access.authorize(db, p, Action.GROUP_MANAGE, org)
    check_name(name)
    check_description(description)
    if db.scalar(select(Group.id).where(Group.organization_id == org.id, Group.name == name)):
        raise Conflict(f"a group named {name!r} already exists in this organization", field="name")
    g = Group(organization_id=org.id, name=name, description=description)
    db.add(g)
    db.flush()
    return g


def get_group(db: Session, p: Principal, group_id: str, action: Action = Action.GROUP_VIEW) -> Group:
    g = db.get(Group, group_id)
    if g is None:
        raise NotFound(f"group {group_id!r} not found")
    access.authorize(db, p, action, g)
    return g


def update_group(
    db: Session, p: Principal, group_id: str, *, name: str | None = None, description: str | None = None
) -> Group:
    g = get_group(db, p, group_id, Action.GROUP_MANAGE)
    if name is not None and name != g.name:
        check_name(name)
        if db.scalar(select(Group.id).where(Group.organization_id == g.organization_id, Group.name == name)):
            raise Conflict(f"a group named {name!r} already exists in this organization", field="name")
        g.name = name
    if description is not None:
        g.description = check_description(description)
    return g


def delete_group(db: Session, p: Principal, group_id: str) -> None:
    g = get_group(db, p, group_id, Action.GROUP_MANAGE)
    db.execute(
        delete(AccessBinding).where(AccessBinding.subject_type == "group", AccessBinding.subject_id == g.id)
    )
    db.delete(g)


def group_members(db: Session, p: Principal, group_id: str) -> list[User]:
    g = get_group(db, p, group_id)
    q = select(User).join(GroupMember, GroupMember.user_id == User.id).where(GroupMember.group_id == g.id)
    return list(db.scalars(q.order_by(User.username)))


def add_group_member(db: Session, p: Principal, group_id: str, user_ref: str) -> User:
    g = get_group(db, p, group_id, Action.GROUP_MANAGE)
    user = find_user(db, user_ref)
    if not is_org_member(db, g.organization_id, user.id):
        raise Invalid(f"user {user.username!r} is not a member of the group's organization", field="user")
    if db.get(GroupMember, (g.id, user.id)) is None:
        db.add(GroupMember(group_id=g.id, user_id=user.id))
    return user


def remove_group_member(db: Session, p: Principal, group_id: str, user_ref: str) -> None:
    g = get_group(db, p, group_id, Action.GROUP_MANAGE)
    user = find_user(db, user_ref)
    gm = db.get(GroupMember, (g.id, user.id))
    if gm is None:
        raise NotFound(f"user {user.username!r} is not in group {g.name!r}")
    db.delete(gm)


# --- invites --------------------------------------------------------------------------------

INVITE_TYPES = (ResourceType.COMMUNITY, ResourceType.PROJECT)


def invite_token() -> str:
    """A new invite's secret. People paste it as a command argument, where a leading "-" would
    read as an option: such a draw is thrown away."""
    while (raw := secrets.token_urlsafe(24)).startswith("-"):
        pass
    return raw


def create_invite(
    db: Session,
    p: Principal,
    rtype: ResourceType,
    rid: str,
    *,
    role: str,
    expires_in_days: int,
    max_uses: int,
) -> tuple[Invite, str]:
    load_resource(db, p, rtype, rid, manage=True)
    if role not in ROLES[rtype]:
        raise Invalid(f"role must be one of {', '.join(ROLES[rtype])} (got {role!r})", field="role")
    if not 1 <= expires_in_days <= 90:
        raise Invalid("expiresInDays must be between 1 and 90", field="expiresInDays")
    if not 1 <= max_uses <= 1000:
        raise Invalid("maxUses must be between 1 and 1000", field="maxUses")
    raw = invite_token()
    inv = Invite(
        token_hash=sha256(raw),
        resource_type=rtype.value,
        resource_id=rid,
        role=role,
        created_by=p.user.id,
        expires_at=utcnow() + timedelta(days=expires_in_days),
        max_uses=max_uses,
    )
    db.add(inv)
    db.flush()
    return inv, raw


def list_invites(db: Session, p: Principal, rtype: ResourceType, rid: str) -> list[Invite]:
    load_resource(db, p, rtype, rid, manage=True)
    q = select(Invite).where(Invite.resource_type == rtype.value, Invite.resource_id == rid)
    return list(db.scalars(q.order_by(Invite.created_at)))


def revoke_invite(db: Session, p: Principal, rtype: ResourceType, rid: str, invite_id: str) -> None:
    load_resource(db, p, rtype, rid, manage=True)
    inv = db.get(Invite, invite_id)
    if inv is None or inv.resource_id != rid:
        raise NotFound(f"invite {invite_id!r} not found")
    inv.revoked_at = inv.revoked_at or utcnow()


def invite_state(inv: Invite) -> str:
    if inv.revoked_at is not None:
        return "REVOKED"
    if as_utc(inv.expires_at) < utcnow():
        return "EXPIRED"
    if inv.uses >= inv.max_uses:
        return "USED"
    return "ACTIVE"


def open_invite(db: Session, raw: str) -> tuple[Invite, Community | Project]:
    """The invite behind a link, if still usable. Holding the link is what authorizes this."""
    inv = db.scalar(select(Invite).where(Invite.token_hash == sha256(raw)))
    if inv is None or invite_state(inv) != "ACTIVE":
        raise NotFound("this invite link is unknown, expired, revoked or used up")
    target: Community | Project | None = (
        db.get(Community, inv.resource_id)
        if inv.resource_type == ResourceType.COMMUNITY.value
        else db.get(Project, inv.resource_id)
    )
    if target is None:
        raise NotFound("this invite link is unknown, expired, revoked or used up")
    return inv, target


def accept_invite(db: Session, user: User, raw: str) -> tuple[Invite, Community | Project]:
    inv, target = open_invite(db, raw)
    rtype = ResourceType(inv.resource_type)
    org_id = organization_id_of(db, target)
    if not is_org_member(db, org_id, user.id):
        db.add(
            AccessBinding(
                resource_type=ResourceType.ORGANIZATION.value,
                resource_id=org_id,
                subject_type="user",
                subject_id=user.id,
                role="member",
                created_by=inv.created_by,
            )
        )
    current = db.scalars(
        select(AccessBinding).where(
            AccessBinding.resource_type == rtype.value,
            AccessBinding.resource_id == target.id,
            AccessBinding.subject_type == "user",
            AccessBinding.subject_id == user.id,
        )
    ).all()
    # Never lower a role someone already has.
    best = max((ROLES[rtype].get(b.role, Rank.NONE) for b in current), default=Rank.NONE)
    if ROLES[rtype][inv.role] > best:
        for b in current:
            db.delete(b)
        db.add(
            AccessBinding(
                resource_type=rtype.value,
                resource_id=target.id,
                subject_type="user",
                subject_id=user.id,
                role=inv.role,
                created_by=inv.created_by,
            )
        )
    # One UPDATE that only succeeds while uses remain: concurrent accepts cannot both win.
    won = cast(
        CursorResult[Any],
        db.execute(
            update(Invite)
            .where(Invite.id == inv.id, Invite.uses < Invite.max_uses, Invite.revoked_at.is_(None))
            .values(uses=Invite.uses + 1)
        ),
    ).rowcount
    if not won:
        raise NotFound("this invite link is unknown, expired, revoked or used up")
    db.refresh(inv)
    return inv, target


def list_users(db: Session, p: Principal, organization_id: str | None = None) -> list[User]:
    """Installation admins see every account; others see the members of their organizations."""
    q = select(User).order_by(User.username)
    if organization_id:
        org = db.get(Organization, organization_id)
        if org is None:
            raise NotFound(f"organization {organization_id!r} not found")
        access.authorize(db, p, Action.ORG_VIEW, org)
        q = q.where(User.id.in_(_org_member_ids([organization_id])))
    elif not p.is_admin:
        my_orgs = select(AccessBinding.resource_id).where(
            AccessBinding.resource_type == ResourceType.ORGANIZATION.value,
            AccessBinding.subject_id.in_(p.subject_ids),
        )
        q = q.where(User.id.in_(_org_member_ids(my_orgs)))
    return list(db.scalars(q))


def _org_member_ids(org_ids: Any) -> Any:
    return select(AccessBinding.subject_id).where(
        AccessBinding.resource_type == ResourceType.ORGANIZATION.value,
        AccessBinding.resource_id.in_(org_ids),
        AccessBinding.subject_type == "user",
    )
