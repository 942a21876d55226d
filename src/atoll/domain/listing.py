"""Queries for the lists a caller may see. The API pages them; the web UI orders them by name.

Each returns a SELECT filtered through the access module's visibility rules, so no list can
show what `access.authorize` would hide.
"""

from __future__ import annotations

from sqlalchemy import Select, select

from atoll.domain import access
from atoll.domain.access import Principal
from atoll.store.tables import ApiToken, BillingAccount, Community, Group, Organization, Project, User


def organizations(p: Principal) -> Select[Organization]:
    return select(Organization).where(access.visible_organizations(p))


def communities(
    p: Principal, *, organization_id: str | None = None, name: str | None = None
) -> Select[Community]:
    q = select(Community).where(access.visible_communities(p))
    if organization_id:
        q = q.where(Community.organization_id == organization_id)
    if name:
        q = q.where(Community.name == name)
    return q


def projects(
    p: Principal,
    *,
    community_id: str | None = None,
    name_pattern: str | None = None,
    owned_by_id: str | None = None,
) -> Select[Project]:
    """DataSphere's project list filters: community, name pattern, owner."""
    q = select(Project).where(access.visible_projects(p))
    if community_id:
        q = q.where(Project.community_id == community_id)
    if name_pattern:
        q = q.where(Project.name.contains(name_pattern, autoescape=True))
    if owned_by_id:
        q = q.where(Project.created_by == owned_by_id)
    return q


def groups(p: Principal, *, organization_id: str | None = None) -> Select[Group]:
    q = select(Group).where(access.visible_groups(p))
    if organization_id:
        q = q.where(Group.organization_id == organization_id)
    return q


def billing_accounts(p: Principal, *, organization_id: str | None = None) -> Select[BillingAccount]:
    q = select(BillingAccount).where(access.visible_billing_accounts(p))
    if organization_id:
        q = q.where(BillingAccount.organization_id == organization_id)
    return q


def tokens(user: User) -> Select[ApiToken]:
    """A user's own tokens: nobody else's are ever listed."""
    return select(ApiToken).where(ApiToken.user_id == user.id)
