"""Read-only lists for the pages, filtered by what the caller may view.

The queries come from `atoll.domain.listing` (shared with the REST API); pages order by name.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from atoll.domain import listing
from atoll.domain.access import Principal
from atoll.store.tables import ApiToken, BillingAccount, Community, Group, Organization, Project, User


def organizations(db: Session, p: Principal) -> list[Organization]:
    return list(db.scalars(listing.organizations(p).order_by(Organization.name)))


def communities(db: Session, p: Principal, organization_id: str | None = None) -> list[Community]:
    q = listing.communities(p, organization_id=organization_id)
    return list(db.scalars(q.order_by(Community.name)))


def projects(db: Session, p: Principal, community_id: str | None = None) -> list[Project]:
    return list(db.scalars(listing.projects(p, community_id=community_id).order_by(Project.name)))


def groups(db: Session, p: Principal, organization_id: str) -> list[Group]:
    return list(db.scalars(listing.groups(p, organization_id=organization_id).order_by(Group.name)))


def billing_accounts(db: Session, p: Principal, organization_id: str | None = None) -> list[BillingAccount]:
    q = listing.billing_accounts(p, organization_id=organization_id)
    return list(db.scalars(q.order_by(BillingAccount.name)))


def tokens(db: Session, user: User) -> list[ApiToken]:
    return list(db.scalars(listing.tokens(user).order_by(ApiToken.created_at.desc())))


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
