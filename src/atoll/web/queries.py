"""Read-only lists for the pages, filtered by what the caller may view.

The domain has no list functions yet (the REST API builds these queries itself); these use
the access module's visibility filters, so what a page lists is what the caller may see.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from atoll.domain import access
from atoll.domain.access import Principal
from atoll.store.models import ApiToken, BillingAccount, Community, Group, Organization, Project, User


def organizations(db: Session, p: Principal) -> list[Organization]:
    q = select(Organization).where(access.visible_organizations(p)).order_by(Organization.name)
    return list(db.scalars(q))


def communities(db: Session, p: Principal, organization_id: str | None = None) -> list[Community]:
    q = select(Community).where(access.visible_communities(p))
    if organization_id:
        q = q.where(Community.organization_id == organization_id)
    return list(db.scalars(q.order_by(Community.name)))


def projects(db: Session, p: Principal, community_id: str | None = None) -> list[Project]:
    q = select(Project).where(access.visible_projects(p))
    if community_id:
        q = q.where(Project.community_id == community_id)
    return list(db.scalars(q.order_by(Project.name)))


def groups(db: Session, p: Principal, organization_id: str) -> list[Group]:
    q = select(Group).where(access.visible_groups(p), Group.organization_id == organization_id)
    return list(db.scalars(q.order_by(Group.name)))


def billing_accounts(db: Session, p: Principal, organization_id: str | None = None) -> list[BillingAccount]:
    q = select(BillingAccount).where(access.visible_billing_accounts(p))
    if organization_id:
        q = q.where(BillingAccount.organization_id == organization_id)
    return list(db.scalars(q.order_by(BillingAccount.name)))


def tokens(db: Session, user: User) -> list[ApiToken]:
    q = select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.created_at.desc())
    return list(db.scalars(q))


def names(
    db: Session, model: type[Organization | Community | BillingAccount], ids: set[str]
) -> dict[str, str]:
    """Display names for ids already known to the caller (breadcrumbs, table cells)."""
    if not ids:
        return {}
    rows = db.execute(select(model.id, model.name).where(model.id.in_(ids)))
    return {rid: name for rid, name in rows}


def organization(db: Session, organization_id: str) -> Organization | None:
    """For breadcrumbs; whether to link it is decided by access.can."""
    return db.get(Organization, organization_id)


def community_of(db: Session, project: Project) -> Community:
    """A project's community, for a project the caller may already view (its rules apply to the project)."""
    c = db.get(Community, project.community_id)
    assert c is not None  # projects are deleted with their community
    return c
