"""Communities (spec §1, §7.2): their zone and billing account, restrictions on the
configurations they may use, feature toggles, and who may change them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from atoll.domain import access
from atoll.domain.access import Action, Principal, ResourceType
from atoll.domain.validation import (
    check_description,
    check_labels,
    check_name,
)
from atoll.errors import Conflict, Invalid, NotFound
from atoll.settings import Settings
from atoll.store.tables import (
    BillingAccount,
    Community,
    Configuration,
    Organization,
    Project,
)

# Community feature toggles (spec §7.2); all on by default but the external IDE link, which hands
# out a token that reaches a project's JupyterLab from outside Atoll's pages: an Admin's choice.
FEATURES = ("nodesAndAliases", "diskResize", "datasets", "externalIde", "dataprocTemplates", "jobs")
OFF_BY_DEFAULT = ("externalIde",)


def _check_zone(settings: Settings, zone_id: str | None) -> str:
    if zone_id is None:
        return settings.zones[0]
    if zone_id not in settings.zones:
        raise Invalid(f"zoneId must be one of {', '.join(settings.zones)} (got {zone_id!r})", field="zoneId")
    return zone_id


def _usable_billing_account(db: Session, p: Principal, org_id: str, ba_id: str, settings: Settings) -> str:
    ba = db.get(BillingAccount, ba_id)
    if ba is None or not access.can(db, p, Action.BILLING_ACCOUNT_VIEW, ba):
        raise Invalid(f"billing account {ba_id!r} not found", field="billingAccountId")
    if not access.can(db, p, Action.BILLING_ACCOUNT_USE, ba):
        raise Invalid(
            f"linking billing account {ba_id!r} needs the billing account editor role",
            field="billingAccountId",
        )
    if ba.organization_id != org_id:
        raise Invalid("the billing account belongs to another organization", field="billingAccountId")
    if not ba.active:
        raise Invalid("the billing account is suspended and cannot be linked", field="billingAccountId")
    quota = settings.quota_communities_per_billing_account
    used = db.scalar(select(func.count()).where(Community.billing_account_id == ba.id)) or 0
    if quota and used >= quota:
        raise Conflict(f"billing account {ba.name!r} already pays for {used} communities (quota {quota})")
    return ba.id


def create_community(
    db: Session,
    p: Principal,
    settings: Settings,
    *,
    organization_id: str,
    name: str,
    description: str = "",
    labels: dict[str, Any] | None = None,
    zone_id: str | None = None,
    billing_account_id: str | None = None,
) -> Community:
    org = db.get(Organization, organization_id)
    if org is None:
        raise Invalid(f"organization {organization_id!r} not found", field="organizationId")
    try:
        access.authorize(db, p, Action.COMMUNITY_CREATE, org)
    except NotFound:
        raise Invalid(f"organization {organization_id!r} not found", field="organizationId") from None
    check_name(name)
    check_description(description)
    clean_labels = check_labels(labels or {})
    zone = _check_zone(settings, zone_id)
    if db.scalar(select(Community.id).where(Community.organization_id == org.id, Community.name == name)):
        raise Conflict(f"a community named {name!r} already exists in this organization", field="name")
    quota = settings.quota_communities_per_org
    used = db.scalar(select(func.count()).where(Community.organization_id == org.id)) or 0
    if quota and used >= quota:
        raise Conflict(f"organization {org.name!r} has reached its quota of {quota} communities")
    ba = _usable_billing_account(db, p, org.id, billing_account_id, settings) if billing_account_id else None
    community = Community(
        organization_id=org.id,
        name=name,
        description=description,
        labels=clean_labels,
        zone_id=zone,
        billing_account_id=ba,
        restrictions={},
        created_by=p.user.id,
    )
    db.add(community)
    db.flush()
    access.grant_creator(db, p, ResourceType.COMMUNITY, community.id)
    return community


def get_community(
    db: Session, p: Principal, community_id: str, action: Action = Action.COMMUNITY_VIEW
) -> Community:
    c = db.get(Community, community_id)
    if c is None:
        raise NotFound(f"community {community_id!r} not found")
    access.authorize(db, p, action, c)
    return c


def update_community(
    db: Session,
    p: Principal,
    community_id: str,
    *,
    name: str | None = None,
    description: str | None = None,
    labels: dict[str, Any] | None = None,
    zone_id: str | None = None,
) -> Community:
    c = get_community(db, p, community_id, Action.COMMUNITY_UPDATE)
    if zone_id is not None and zone_id != c.zone_id:
        raise Invalid("zoneId cannot be changed after the community is created", field="zoneId")
    if name is not None and name != c.name:
        check_name(name)
        taken = select(Community.id).where(
            Community.organization_id == c.organization_id, Community.name == name
        )
        if db.scalar(taken):
            raise Conflict(f"a community named {name!r} already exists in this organization", field="name")
        c.name = name
    if description is not None:
        c.description = check_description(description)
    if labels is not None:
        c.labels = check_labels(labels)
    return c


def link_billing_account(
    db: Session, p: Principal, settings: Settings, community_id: str, billing_account_id: str | None
) -> Community:
    c = get_community(db, p, community_id, Action.COMMUNITY_LINK_BILLING)
    if billing_account_id is None:
        c.billing_account_id = None
    elif billing_account_id != c.billing_account_id:
        c.billing_account_id = _usable_billing_account(db, p, c.organization_id, billing_account_id, settings)
    return c


def restrictions_of(c: Community) -> dict[str, Any]:
    """The community's restrictions with defaults filled in."""
    r = c.restrictions or {}
    features = {f: f not in OFF_BY_DEFAULT for f in FEATURES} | dict(r.get("features") or {})
    return {"allowedConfigurations": r.get("allowedConfigurations"), "features": features}


def set_restrictions(
    db: Session,
    p: Principal,
    community_id: str,
    *,
    allowed_configurations: list[str] | None,
    features: dict[str, bool] | None,
) -> Community:
    c = get_community(db, p, community_id, Action.COMMUNITY_SET_RESTRICTIONS)
    current = restrictions_of(c)
    if allowed_configurations is not None:
        known = set(db.scalars(select(Configuration.name)))
        for i, name in enumerate(allowed_configurations):
            if name not in known:
                raise Invalid(
                    f"configuration {name!r} is not in the catalogue", field=f"allowedConfigurations[{i}]"
                )
        if not allowed_configurations:
            raise Invalid(
                "allowedConfigurations must name at least one configuration, or be null to allow all",
                field="allowedConfigurations",
            )
        current["allowedConfigurations"] = sorted(set(allowed_configurations))
    for key, value in (features or {}).items():
        if key not in FEATURES:
            raise Invalid(f"unknown feature {key!r}; known: {', '.join(FEATURES)}", field=f"features.{key}")
        if not isinstance(value, bool):
            raise Invalid(f"features.{key} must be true or false", field=f"features.{key}")
        current["features"][key] = value
    c.restrictions = current
    return c


def clear_allowed_configurations(db: Session, p: Principal, community_id: str) -> Community:
    c = get_community(db, p, community_id, Action.COMMUNITY_SET_RESTRICTIONS)
    c.restrictions = restrictions_of(c) | {"allowedConfigurations": None}
    return c


def configuration_allowed(c: Community, name: str) -> bool:
    allowed = restrictions_of(c)["allowedConfigurations"]
    return allowed is None or name in allowed


def delete_community(db: Session, p: Principal, community_id: str) -> None:
    c = get_community(db, p, community_id, Action.COMMUNITY_DELETE)
    n = db.scalar(select(func.count()).where(Project.community_id == c.id)) or 0
    if n:
        raise Conflict(f"community {c.name!r} still has {n} projects: delete them first")
    access.drop_bindings(db, ResourceType.COMMUNITY, [c.id])
    db.delete(c)
