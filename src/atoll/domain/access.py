"""The one place that decides every permission (spec §2).

Roles are bindings of a user or a group to a resource. A grant applies down the hierarchy:
organization admin → admin of its communities; a community role gives the matching project
role in all of the community's projects (viewer/developer → project viewer, editor → project
editor, admin → project admin). Installation admins may do everything.

`authorize()` raises NotFound — not Forbidden — when the caller may not even view the
resource, so a user with no role cannot tell whether it exists.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from sqlalchemy import ColumnElement, delete, or_, select, true
from sqlalchemy.orm import Session

from atoll.domain import audit
from atoll.errors import Forbidden, NotFound, Unauthenticated
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
    WebSession,
)


class ResourceType(StrEnum):
    ORGANIZATION = "organization"
    COMMUNITY = "community"
    PROJECT = "project"
    BILLING_ACCOUNT = "billingAccount"


class Rank(IntEnum):
    NONE = 0
    VIEWER = 1
    DEVELOPER = 2
    EDITOR = 3
    ADMIN = 4


# Roles that may be granted on each resource type, and the rank each stands for.
ROLES: dict[ResourceType, dict[str, Rank]] = {
    ResourceType.ORGANIZATION: {"member": Rank.VIEWER, "admin": Rank.ADMIN},
    ResourceType.COMMUNITY: {
        "viewer": Rank.VIEWER,
        "developer": Rank.DEVELOPER,
        "editor": Rank.EDITOR,
        "admin": Rank.ADMIN,
    },
    ResourceType.PROJECT: {
        "viewer": Rank.VIEWER,
        "developer": Rank.DEVELOPER,
        "editor": Rank.EDITOR,
        "admin": Rank.ADMIN,
    },
    ResourceType.BILLING_ACCOUNT: {"viewer": Rank.VIEWER, "editor": Rank.EDITOR, "admin": Rank.ADMIN},
}

# DataSphere's role ids, shown beside ours in the API and docs.
ROLE_IDS: dict[tuple[ResourceType, str], str] = {
    **{(ResourceType.COMMUNITY, r): f"datasphere.communities.{r}" for r in ROLES[ResourceType.COMMUNITY]},
    **{(ResourceType.PROJECT, r): f"datasphere.community-projects.{r}" for r in ROLES[ResourceType.PROJECT]},
    (ResourceType.ORGANIZATION, "member"): "organization-manager.organizations.member",
    (ResourceType.ORGANIZATION, "admin"): "organization-manager.admin",
    **{
        (ResourceType.BILLING_ACCOUNT, r): f"billing.accounts.{r}"
        for r in ROLES[ResourceType.BILLING_ACCOUNT]
    },
}

# A community role grants this project rank in all the community's projects.
_COMMUNITY_TO_PROJECT = {
    Rank.NONE: Rank.NONE,
    Rank.VIEWER: Rank.VIEWER,
    Rank.DEVELOPER: Rank.VIEWER,
    Rank.EDITOR: Rank.EDITOR,
    Rank.ADMIN: Rank.ADMIN,
}


class Action(StrEnum):
    """Everything a caller can ask to do. Spec §2's action table, plus installation-level actions."""

    SYSTEM_MANAGE = "system.manage"  # users, catalogue, organizations: installation admins
    CATALOG_VIEW = "catalog.view"  # any signed-in user
    ORG_VIEW = "organization.view"
    ORG_UPDATE = "organization.update"
    ORG_MANAGE_ACCESS = "organization.manageAccess"
    ORG_VIEW_AUDIT = "organization.viewAudit"  # the audit log: organization admins
    GROUP_VIEW = "group.view"
    GROUP_MANAGE = "group.manage"
    BILLING_ACCOUNT_CREATE = "billingAccount.create"
    BILLING_ACCOUNT_VIEW = "billingAccount.view"
    BILLING_ACCOUNT_USE = "billingAccount.use"
    BILLING_ACCOUNT_UPDATE = "billingAccount.update"
    BILLING_ACCOUNT_MANAGE_ACCESS = "billingAccount.manageAccess"
    COMMUNITY_CREATE = "community.create"
    COMMUNITY_VIEW = "community.view"
    COMMUNITY_UPDATE = "community.update"
    COMMUNITY_DELETE = "community.delete"
    COMMUNITY_LINK_BILLING = "community.linkBillingAccount"
    COMMUNITY_MANAGE_ACCESS = "community.manageAccess"
    COMMUNITY_SET_RESTRICTIONS = "community.setRestrictions"
    COMMUNITY_VIEW_USAGE = "community.viewUsage"
    PROJECT_CREATE = "project.create"
    PROJECT_VIEW = "project.view"
    PROJECT_USE = "project.use"
    PROJECT_UPDATE = "project.update"
    PROJECT_DELETE = "project.delete"
    PROJECT_VIEW_LIMITS = "project.viewLimits"
    PROJECT_VIEW_USAGE = "project.viewUsage"
    PROJECT_SET_LIMITS = "project.setLimits"
    PROJECT_MANAGE_ACCESS = "project.manageAccess"
    RESOURCE_PUBLISH = "resource.publish"


# The action that views a resource's members, and the one that grants roles on it.
VIEW_ACTION: dict[ResourceType, Action] = {
    ResourceType.ORGANIZATION: Action.ORG_VIEW,
    ResourceType.COMMUNITY: Action.COMMUNITY_VIEW,
    ResourceType.PROJECT: Action.PROJECT_VIEW,
    ResourceType.BILLING_ACCOUNT: Action.BILLING_ACCOUNT_VIEW,
}
MANAGE_ACTION: dict[ResourceType, Action] = {
    ResourceType.ORGANIZATION: Action.ORG_MANAGE_ACCESS,
    ResourceType.COMMUNITY: Action.COMMUNITY_MANAGE_ACCESS,
    ResourceType.PROJECT: Action.PROJECT_MANAGE_ACCESS,
    ResourceType.BILLING_ACCOUNT: Action.BILLING_ACCOUNT_MANAGE_ACCESS,
}


@dataclass(frozen=True)
class Requirement:
    """The resource type an action is checked on and the least rank it needs there."""

    on: ResourceType | None  # None: installation-level
    rank: Rank
    why: str


REQUIREMENTS: dict[Action, Requirement] = {
    Action.SYSTEM_MANAGE: Requirement(None, Rank.ADMIN, "installation admin"),
    Action.CATALOG_VIEW: Requirement(None, Rank.NONE, "any signed-in user"),
    Action.ORG_VIEW: Requirement(ResourceType.ORGANIZATION, Rank.VIEWER, "organization member"),
    Action.ORG_UPDATE: Requirement(ResourceType.ORGANIZATION, Rank.ADMIN, "organization admin"),
    Action.ORG_MANAGE_ACCESS: Requirement(ResourceType.ORGANIZATION, Rank.ADMIN, "organization admin"),
    Action.ORG_VIEW_AUDIT: Requirement(ResourceType.ORGANIZATION, Rank.ADMIN, "organization admin"),
    Action.GROUP_VIEW: Requirement(ResourceType.ORGANIZATION, Rank.VIEWER, "organization member"),
    Action.GROUP_MANAGE: Requirement(ResourceType.ORGANIZATION, Rank.ADMIN, "organization admin"),
    Action.BILLING_ACCOUNT_CREATE: Requirement(ResourceType.ORGANIZATION, Rank.VIEWER, "organization member"),
    Action.BILLING_ACCOUNT_VIEW: Requirement(
        ResourceType.BILLING_ACCOUNT, Rank.VIEWER, "billing account viewer"
    ),
    Action.BILLING_ACCOUNT_USE: Requirement(
        ResourceType.BILLING_ACCOUNT, Rank.EDITOR, "billing account editor"
    ),
    Action.BILLING_ACCOUNT_UPDATE: Requirement(
        ResourceType.BILLING_ACCOUNT, Rank.ADMIN, "billing account admin"
    ),
    Action.BILLING_ACCOUNT_MANAGE_ACCESS: Requirement(
        ResourceType.BILLING_ACCOUNT, Rank.ADMIN, "billing account admin"
    ),
    Action.COMMUNITY_CREATE: Requirement(ResourceType.ORGANIZATION, Rank.VIEWER, "organization member"),
    Action.COMMUNITY_VIEW: Requirement(ResourceType.COMMUNITY, Rank.VIEWER, "community Viewer"),
    Action.COMMUNITY_UPDATE: Requirement(ResourceType.COMMUNITY, Rank.EDITOR, "community Editor"),
    Action.COMMUNITY_DELETE: Requirement(ResourceType.COMMUNITY, Rank.EDITOR, "community Editor"),
    Action.COMMUNITY_LINK_BILLING: Requirement(ResourceType.COMMUNITY, Rank.EDITOR, "community Editor"),
    Action.COMMUNITY_MANAGE_ACCESS: Requirement(ResourceType.COMMUNITY, Rank.ADMIN, "community Admin"),
    Action.COMMUNITY_SET_RESTRICTIONS: Requirement(ResourceType.COMMUNITY, Rank.ADMIN, "community Admin"),
    # Costs are shown to those who may see the limits (spec §7.2: project Editor) and their
    # community-level counterpart.
    Action.COMMUNITY_VIEW_USAGE: Requirement(ResourceType.COMMUNITY, Rank.EDITOR, "community Editor"),
    Action.PROJECT_CREATE: Requirement(ResourceType.COMMUNITY, Rank.DEVELOPER, "community Developer"),
    Action.PROJECT_VIEW: Requirement(ResourceType.PROJECT, Rank.VIEWER, "project Viewer"),
    Action.PROJECT_USE: Requirement(ResourceType.PROJECT, Rank.DEVELOPER, "project Developer"),
    Action.PROJECT_UPDATE: Requirement(ResourceType.PROJECT, Rank.EDITOR, "project Editor"),
    Action.PROJECT_DELETE: Requirement(ResourceType.PROJECT, Rank.EDITOR, "project Editor"),
    Action.PROJECT_VIEW_LIMITS: Requirement(ResourceType.PROJECT, Rank.EDITOR, "project Editor"),
    Action.PROJECT_VIEW_USAGE: Requirement(ResourceType.PROJECT, Rank.EDITOR, "project Editor"),
    Action.PROJECT_SET_LIMITS: Requirement(ResourceType.PROJECT, Rank.ADMIN, "project Admin"),
    Action.PROJECT_MANAGE_ACCESS: Requirement(ResourceType.PROJECT, Rank.ADMIN, "project Admin"),
    # Also needs community Developer in the target community: see `authorize_publish`.
    Action.RESOURCE_PUBLISH: Requirement(ResourceType.PROJECT, Rank.EDITOR, "project Editor"),
}


@dataclass
class Principal:
    """Who is calling: a user and the groups they belong to, loaded once per request."""

    user: User
    group_ids: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_admin(self) -> bool:
        return self.user.is_admin

    @property
    def subject_ids(self) -> list[str]:
        return [self.user.id, *self.group_ids]


def load_principal(db: Session, user: User) -> Principal:
    gids = db.scalars(select(GroupMember.group_id).where(GroupMember.user_id == user.id)).all()
    return Principal(user=user, group_ids=frozenset(gids))


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def identify(
    db: Session,
    authorization: str | None,
    session_cookie: str | None,
    *,
    notebook_of: str | None = None,
    query_token: str | None = None,
) -> tuple[Principal | None, WebSession | None]:
    """Who is calling: a bearer API token, else a session cookie (the session comes back too,
    since cookie-authenticated writes need a CSRF or same-origin check). (None, None): anonymous.
    A bearer token that is unknown, expired or revoked is an error, never anonymous.

    ``notebook_of``: the request is for that project's JupyterLab (the notebook gateway), where
    Jupyter's own ways of sending a token are taken too, as an external IDE sends them
    (``Authorization: token …``, ``?token=…``), and where that project's scoped tokens are valid.
    """
    from atoll.domain import auth  # auth is below access: imported here to keep the layers plain

    token = bearer_token(authorization)
    if token is None and notebook_of is not None:
        scheme, _, value = (authorization or "").partition(" ")
        token = value.strip() if scheme.lower() == "token" and value.strip() else None
        if (
            token is None
            and query_token
            and not (session_cookie and auth.session_from_cookie(db, session_cookie) is not None)
        ):
            # A URL's token is for clients without Atoll's cookie (an IDE); a signed-in browser
            # that follows a link carrying some token stays who it is.
            token = query_token
    if token is not None:
        try:
            user = auth.user_from_token(db, token, notebook_of)
        except auth.WrongScope:
            raise Unauthenticated(
                "this token is an external IDE link: it opens one project's JupyterLab, nothing else"
            ) from None
        if user is None:
            raise Unauthenticated("the API token is unknown, expired or revoked")
        db.commit()  # last-used stamp
        audit.note_actor(user.id, user.username, "token")
        return load_principal(db, user), None
    if session_cookie:
        found = auth.session_from_cookie(db, session_cookie)
        if found is not None:
            ws, user = found
            audit.note_actor(user.id, user.username, "session")
            return load_principal(db, user), ws
    return None, None


def _binding_rank(db: Session, p: Principal, rtype: ResourceType, rid: str) -> Rank:
    roles = db.scalars(
        select(AccessBinding.role).where(
            AccessBinding.resource_type == rtype.value,
            AccessBinding.resource_id == rid,
            AccessBinding.subject_id.in_(p.subject_ids),
        )
    ).all()
    table = ROLES[rtype]
    return max((table.get(r, Rank.NONE) for r in roles), default=Rank.NONE)


Resource = Organization | Community | Project | BillingAccount | Group


def rank_on(db: Session, p: Principal, resource: Resource) -> Rank:
    """The caller's effective rank on a resource, with inheritance down the hierarchy."""
    if p.is_admin:
        return Rank.ADMIN
    if isinstance(resource, Organization):
        return _binding_rank(db, p, ResourceType.ORGANIZATION, resource.id)
    if isinstance(resource, Group):
        return _binding_rank(db, p, ResourceType.ORGANIZATION, resource.organization_id)
    if isinstance(resource, BillingAccount):
        org_rank = _binding_rank(db, p, ResourceType.ORGANIZATION, resource.organization_id)
        own = _binding_rank(db, p, ResourceType.BILLING_ACCOUNT, resource.id)
        return max(own, Rank.ADMIN if org_rank >= Rank.ADMIN else Rank.NONE)
    if isinstance(resource, Community):
        org_rank = _binding_rank(db, p, ResourceType.ORGANIZATION, resource.organization_id)
        own = _binding_rank(db, p, ResourceType.COMMUNITY, resource.id)
        return max(own, Rank.ADMIN if org_rank >= Rank.ADMIN else Rank.NONE)
    if isinstance(resource, Project):
        community = db.get(Community, resource.community_id)
        inherited = _COMMUNITY_TO_PROJECT[rank_on(db, p, community)] if community else Rank.NONE
        return max(_binding_rank(db, p, ResourceType.PROJECT, resource.id), inherited)
    raise TypeError(f"no access rules for {type(resource).__name__}")


def _target(db: Session, on: ResourceType, resource: Resource) -> Resource:
    """The object a requirement is checked on (e.g. an organization for a group action)."""
    if on is ResourceType.ORGANIZATION and not isinstance(resource, Organization):
        org_id = getattr(resource, "organization_id", None)
        org = db.get(Organization, org_id) if org_id else None
        if org is None:
            raise NotFound("organization not found")
        return org
    return resource


def _kind(resource: Resource) -> str:
    return {
        Organization: "organization",
        Community: "community",
        Project: "project",
        BillingAccount: "billing account",
        Group: "group",
    }[type(resource)]


def can(db: Session, p: Principal, action: Action, resource: Resource | None = None) -> bool:
    try:
        authorize(db, p, action, resource)
    except (Forbidden, NotFound):
        return False
    return True


def authorize(db: Session, p: Principal | None, action: Action, resource: Resource | None = None) -> None:
    """Allow or raise. NotFound when the caller cannot even view the resource."""
    if p is None:
        raise Unauthenticated("sign in or pass an API token (Authorization: Bearer …)")
    req = REQUIREMENTS[action]
    audit.note_target(resource)
    if req.on is None:
        if req.rank > Rank.NONE and not p.is_admin:
            raise Forbidden(f"this needs the {req.why} role")
        return
    if resource is None:
        raise TypeError(f"{action} needs a resource")
    # Visibility is judged on the resource itself: a group member sees the group's org.
    seen = rank_on(db, p, resource)
    if seen < Rank.VIEWER:
        raise NotFound(f"{_kind(resource)} {resource.id!r} not found")
    target = _target(db, req.on, resource)
    if target is not resource:
        seen = rank_on(db, p, target)
    if seen < req.rank:
        raise Forbidden(f"{action.value} on {_kind(target)} {target.id!r} needs the {req.why} role")


def authorize_publish(db: Session, p: Principal, project: Project, target: Community) -> None:
    """Publishing into a community needs project Editor and community Developer (spec §2)."""
    authorize(db, p, Action.RESOURCE_PUBLISH, project)
    if rank_on(db, p, target) < Rank.DEVELOPER:
        raise Forbidden(f"publishing into community {target.id!r} needs the community Developer role")


# --- listing: SQL filters that keep lists to what the caller may view ------------------------


def _bound_ids(p: Principal, rtype: ResourceType, roles: Iterable[str] | None = None) -> ColumnElement[bool]:
    q = select(AccessBinding.resource_id).where(
        AccessBinding.resource_type == rtype.value, AccessBinding.subject_id.in_(p.subject_ids)
    )
    if roles is not None:
        q = q.where(AccessBinding.role.in_(list(roles)))
    return q  # type: ignore[return-value]


def visible_organizations(p: Principal) -> ColumnElement[bool]:
    if p.is_admin:
        return true()
    return Organization.id.in_(_bound_ids(p, ResourceType.ORGANIZATION))


def visible_communities(p: Principal) -> ColumnElement[bool]:
    if p.is_admin:
        return true()
    return or_(
        Community.id.in_(_bound_ids(p, ResourceType.COMMUNITY)),
        Community.organization_id.in_(_bound_ids(p, ResourceType.ORGANIZATION, ["admin"])),
    )


def visible_projects(p: Principal) -> ColumnElement[bool]:
    if p.is_admin:
        return true()
    communities = select(Community.id).where(visible_communities(p))
    return or_(Project.id.in_(_bound_ids(p, ResourceType.PROJECT)), Project.community_id.in_(communities))


def visible_billing_accounts(p: Principal) -> ColumnElement[bool]:
    if p.is_admin:
        return true()
    return or_(
        BillingAccount.id.in_(_bound_ids(p, ResourceType.BILLING_ACCOUNT)),
        BillingAccount.organization_id.in_(_bound_ids(p, ResourceType.ORGANIZATION, ["admin"])),
    )


def visible_groups(p: Principal) -> ColumnElement[bool]:
    if p.is_admin:
        return true()
    return Group.organization_id.in_(_bound_ids(p, ResourceType.ORGANIZATION))


def grant_creator(db: Session, p: Principal, rtype: ResourceType, rid: str) -> None:
    """Make the creator of a resource its admin."""
    db.add(
        AccessBinding(
            resource_type=rtype.value,
            resource_id=rid,
            subject_type="user",
            subject_id=p.user.id,
            role="admin",
            created_by=p.user.id,
        )
    )


def drop_bindings(db: Session, rtype: ResourceType, ids: list[str]) -> None:
    """Remove the role bindings and invites of deleted resources."""
    if ids:
        db.execute(
            delete(AccessBinding).where(
                AccessBinding.resource_type == rtype.value, AccessBinding.resource_id.in_(ids)
            )
        )
        db.execute(delete(Invite).where(Invite.resource_type == rtype.value, Invite.resource_id.in_(ids)))
