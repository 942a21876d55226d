"""Billing accounts and the unit model (spec §7.1).

1 unit = 1 vCPU for 1 second. A configuration costs `units_per_second`; time is rounded up
to whole seconds; a billing account prices units in its currency. Metering builds on this.
"""

from __future__ import annotations

import math
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from atoll.domain import access
from atoll.domain.access import Action, Principal, ResourceType
from atoll.domain.validation import check_description, check_name
from atoll.errors import Conflict, Invalid, NotFound
from atoll.store.tables import (
    AccessBinding,
    BillingAccount,
    Community,
    Configuration,
    Organization,
    UsageRecord,
)

DEFAULT_UNIT_PRICE = 0.0000096  # USD per unit (spec §3.1)
CURRENCIES = ("USD", "EUR", "RUB", "KZT")


def units_for(units_per_second: int, seconds: float) -> int:
    """Units for a run of `seconds`, rounded up to whole seconds (spec §7.1)."""
    if seconds <= 0:
        return 0
    return units_per_second * math.ceil(seconds - 1e-9)


def cost_of(units: int, ba: BillingAccount) -> float:
    return units * ba.unit_price


def hourly_units(cfg: Configuration) -> int:
    """What a configuration costs per hour; `maxUnitsPerHour` is checked against it."""
    return cfg.units_per_second * 3600


def _check_price(unit_price: float) -> float:
    if isinstance(unit_price, bool) or not isinstance(unit_price, int | float) or unit_price < 0:
        raise Invalid("unitPrice must be a non-negative number", field="unitPrice")
    return float(unit_price)


def create_billing_account(
    db: Session,
    p: Principal,
    *,
    organization_id: str,
    name: str,
    description: str = "",
    currency: str = "USD",
    unit_price: float = DEFAULT_UNIT_PRICE,
) -> BillingAccount:
    org = db.get(Organization, organization_id)
    if org is None or not access.can(db, p, Action.ORG_VIEW, org):
        raise Invalid(f"organization {organization_id!r} not found", field="organizationId")
    access.authorize(db, p, Action.BILLING_ACCOUNT_CREATE, org)
    check_name(name)
    check_description(description)
    if currency not in CURRENCIES:
        raise Invalid(f"currency must be one of {', '.join(CURRENCIES)}", field="currency")
    if db.scalar(
        select(BillingAccount.id).where(BillingAccount.organization_id == org.id, BillingAccount.name == name)
    ):
        raise Conflict(f"a billing account named {name!r} already exists in this organization", field="name")
    ba = BillingAccount(
        organization_id=org.id,
        name=name,
        description=description,
        currency=currency,
        unit_price=_check_price(unit_price),
    )
    db.add(ba)
    db.flush()
    db.add(
        AccessBinding(
            resource_type=ResourceType.BILLING_ACCOUNT.value,
            resource_id=ba.id,
            subject_type="user",
            subject_id=p.user.id,
            role="admin",
            created_by=p.user.id,
        )
    )
    return ba


def get_billing_account(
    db: Session, p: Principal, ba_id: str, action: Action = Action.BILLING_ACCOUNT_VIEW
) -> BillingAccount:
    ba = db.get(BillingAccount, ba_id)
    if ba is None:
        raise NotFound(f"billing account {ba_id!r} not found")
    access.authorize(db, p, action, ba)
    return ba


def update_billing_account(
    db: Session,
    p: Principal,
    ba_id: str,
    *,
    name: str | None = None,
    description: str | None = None,
    unit_price: float | None = None,
    active: bool | None = None,
) -> BillingAccount:
    ba = get_billing_account(db, p, ba_id, Action.BILLING_ACCOUNT_UPDATE)
    if name is not None and name != ba.name:
        check_name(name)
        taken = select(BillingAccount.id).where(
            BillingAccount.organization_id == ba.organization_id, BillingAccount.name == name
        )
        if db.scalar(taken):
            raise Conflict(f"a billing account named {name!r} already exists", field="name")
        ba.name = name
    if description is not None:
        ba.description = check_description(description)
    if unit_price is not None:
        ba.unit_price = _check_price(unit_price)
    if active is not None:
        ba.active = active
    return ba


def delete_billing_account(db: Session, p: Principal, ba_id: str) -> None:
    ba = get_billing_account(db, p, ba_id, Action.BILLING_ACCOUNT_UPDATE)
    linked = db.scalar(select(func.count()).where(Community.billing_account_id == ba.id)) or 0
    if linked:
        raise Conflict(f"billing account {ba.name!r} pays for {linked} communities: unlink them first")
    db.query(AccessBinding).filter(
        AccessBinding.resource_type == ResourceType.BILLING_ACCOUNT.value, AccessBinding.resource_id == ba.id
    ).delete()
    db.delete(ba)


def usage_units(
    db: Session,
    *,
    project_id: str | None = None,
    community_id: str | None = None,
    billing_account_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> int:
    """Units recorded over a period for a project, community or billing account."""
    q = select(func.coalesce(func.sum(UsageRecord.units), 0))
    if project_id:
        q = q.where(UsageRecord.project_id == project_id)
    if community_id:
        q = q.where(UsageRecord.community_id == community_id)
    if billing_account_id:
        q = q.where(UsageRecord.billing_account_id == billing_account_id)
    if since:
        q = q.where(UsageRecord.ended_at >= since)
    if until:
        q = q.where(UsageRecord.started_at < until)
    return int(db.scalar(q) or 0)
