"""First start on an empty database: the first admin, a default organization and billing account."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from atoll.domain import auth
from atoll.domain.access import ResourceType
from atoll.domain.passwords import check_password
from atoll.settings import Settings
from atoll.store.tables import AccessBinding, BillingAccount, Organization, User


@dataclass
class FirstAdmin:
    username: str
    password: str
    generated: bool


def ensure_first_admin(db: Session, settings: Settings) -> FirstAdmin | None:
    """Create the first admin when no user exists yet; returns its credentials to print once."""
    if db.scalar(select(func.count()).select_from(User)):
        return None
    generated = not settings.admin_password
    if not generated:
        # Named as the admin set it, so that `atoll up` can say which setting to fix.
        check_password(
            settings.admin_password, username=settings.admin_username, field="ATOLL_ADMIN_PASSWORD"
        )
    password = settings.admin_password or secrets.token_urlsafe(12)
    user = auth.create_user(db, username=settings.admin_username, password=password, is_admin=True)
    org = Organization(name="default", description="Created on first start")
    db.add(org)
    db.flush()
    ba = BillingAccount(organization_id=org.id, name="default", description="Created on first start")
    db.add(ba)
    db.flush()
    for rtype, rid in ((ResourceType.ORGANIZATION, org.id), (ResourceType.BILLING_ACCOUNT, ba.id)):
        db.add(
            AccessBinding(
                resource_type=rtype.value,
                resource_id=rid,
                subject_type="user",
                subject_id=user.id,
                role="admin",
            )
        )
    return FirstAdmin(user.username, password, generated)
