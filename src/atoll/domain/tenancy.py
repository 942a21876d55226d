"""Organizations, communities and projects (spec §1) with the rules on who may do what."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from atoll.domain import access
from atoll.domain.access import Action, Principal, ResourceType
from atoll.domain.validation import (
    check_description,
    check_labels,
    check_name,
    parse_duration,
)
from atoll.errors import Conflict, Invalid, NotFound
from atoll.settings import Settings
from atoll.states import WORKLOAD_ACTIVE
from atoll.store.tables import (
    AccessBinding,
    BillingAccount,
    Community,
    Configuration,
    Group,
    Invite,
    Organization,
    Project,
    WorkloadRow,
)

STALE_EXEC_MODES = ("ONE_HOUR", "THREE_HOURS", "NO_TIMEOUT")
IDES = ("JUPYTER_LAB",)
# Community feature toggles (spec §7.2); all on by default.
FEATURES = ("nodesAndAliases", "diskResize", "datasets", "externalIde", "dataprocTemplates", "jobs")


def _grant_creator(db: Session, p: Principal, rtype: ResourceType, rid: str) -> None:
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


def _drop_bindings(db: Session, rtype: ResourceType, ids: list[str]) -> None:
    if ids:
        db.execute(
            delete(AccessBinding).where(
                AccessBinding.resource_type == rtype.value, AccessBinding.resource_id.in_(ids)
            )
        )
        db.execute(delete(Invite).where(Invite.resource_type == rtype.value, Invite.resource_id.in_(ids)))


# --- organizations --------------------------------------------------------------------------


def create_organization(db: Session, p: Principal, *, name: str, description: str = "") -> Organization:
    access.authorize(db, p, Action.SYSTEM_MANAGE)
    check_name(name)
    check_description(description)
    if db.scalar(select(Organization.id).where(Organization.name == name)):
        raise Conflict(f"an organization named {name!r} already exists", field="name")
    org = Organization(name=name, description=description)
    db.add(org)
    db.flush()
    _grant_creator(db, p, ResourceType.ORGANIZATION, org.id)
    return org


def get_organization(
    db: Session, p: Principal, org_id: str, action: Action = Action.ORG_VIEW
) -> Organization:
    org = db.get(Organization, org_id) or db.scalar(select(Organization).where(Organization.name == org_id))
    if org is None:
        raise NotFound(f"organization {org_id!r} not found")
    access.authorize(db, p, action, org)
    return org


def update_organization(
    db: Session, p: Principal, org_id: str, *, name: str | None = None, description: str | None = None
) -> Organization:
    org = get_organization(db, p, org_id, Action.ORG_UPDATE)
    if name is not None and name != org.name:
        check_name(name)
        if db.scalar(select(Organization.id).where(Organization.name == name)):
            raise Conflict(f"an organization named {name!r} already exists", field="name")
        org.name = name
    if description is not None:
        org.description = check_description(description)
    return org


def delete_organization(db: Session, p: Principal, org_id: str) -> None:
    org = get_organization(db, p, org_id)
    access.authorize(db, p, Action.SYSTEM_MANAGE)
    n = db.scalar(select(func.count()).where(Community.organization_id == org.id)) or 0
    if n:
        raise Conflict(f"organization {org.name!r} still has {n} communities: delete them first")
    group_ids = list(db.scalars(select(Group.id).where(Group.organization_id == org.id)))
    if group_ids:
        db.execute(delete(AccessBinding).where(AccessBinding.subject_id.in_(group_ids)))
    ba_ids = list(db.scalars(select(BillingAccount.id).where(BillingAccount.organization_id == org.id)))
    _drop_bindings(db, ResourceType.BILLING_ACCOUNT, ba_ids)
    _drop_bindings(db, ResourceType.ORGANIZATION, [org.id])
    db.delete(org)


# --- communities ----------------------------------------------------------------------------


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
    _grant_creator(db, p, ResourceType.COMMUNITY, community.id)
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
    features = {f: True for f in FEATURES} | dict(r.get("features") or {})
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
    _drop_bindings(db, ResourceType.COMMUNITY, [c.id])
    db.delete(c)


# --- projects -------------------------------------------------------------------------------


def _apply_settings(db: Session, community: Community, project: Project, settings: dict[str, Any]) -> None:
    for key, value in settings.items():
        f = f"settings.{key}"
        if key == "defaultConfiguration":
            if value is not None:
                if db.get(Configuration, value) is None:
                    raise Invalid(f"configuration {value!r} is not in the catalogue", field=f)
                if not configuration_allowed(community, value):
                    raise Invalid(f"configuration {value!r} is not allowed in this community", field=f)
            project.default_configuration = value
        elif key == "vmInactivityTimeout":
            project.vm_inactivity_timeout_s = parse_duration(value, f)
        elif key == "staleExecTimeoutMode":
            if value not in STALE_EXEC_MODES:
                raise Invalid(f"{f} must be one of {', '.join(STALE_EXEC_MODES)} (got {value!r})", field=f)
            project.stale_exec_timeout_mode = value
        elif key == "ide":
            if value not in IDES:
                raise Invalid(f"{f} must be one of {', '.join(IDES)} (got {value!r})", field=f)
            project.ide = value
        else:
            raise Invalid(
                f"unknown project setting {key!r}; known: defaultConfiguration, vmInactivityTimeout, "
                "staleExecTimeoutMode, ide",
                field=f,
            )


MAX_UNITS = 10**15  # far above any real budget, well inside a 64-bit column
LIMIT_FIELDS = {
    "balance": "balance",
    "maxUnitsPerHour": "max_units_per_hour",
    "maxUnitsPerExecution": "max_units_per_execution",
}


def _apply_limits(project: Project, limits: dict[str, Any], prefix: str = "") -> None:
    """Set limits; `prefix` is where they sit in the request body, so errors name the field."""
    for key, value in limits.items():
        f = f"{prefix}{key}"
        if key not in LIMIT_FIELDS:
            raise Invalid(f"unknown limit {key!r}; known: {', '.join(LIMIT_FIELDS)}", field=f)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise Invalid(f"{f} must be a whole number of units, or null for no limit", field=f)
        if value is not None and not (0 if key == "balance" else 1) <= value <= MAX_UNITS:
            what = "must not be negative" if key == "balance" else "must be positive"
            raise Invalid(f"{f} {what} (at most {MAX_UNITS}), or null for no limit", field=f)
        setattr(project, LIMIT_FIELDS[key], value)


def create_project(
    db: Session,
    p: Principal,
    settings: Settings,
    *,
    community_id: str,
    name: str,
    description: str = "",
    labels: dict[str, Any] | None = None,
    project_settings: dict[str, Any] | None = None,
    limits: dict[str, Any] | None = None,
) -> Project:
    c = db.get(Community, community_id)
    if c is None or not access.can(db, p, Action.COMMUNITY_VIEW, c):
        raise Invalid(f"community {community_id!r} not found", field="communityId")
    access.authorize(db, p, Action.PROJECT_CREATE, c)
    check_name(name)
    check_description(description)
    clean_labels = check_labels(labels or {})
    if db.scalar(select(Project.id).where(Project.community_id == c.id, Project.name == name)):
        raise Conflict(f"a project named {name!r} already exists in this community", field="name")
    quota = settings.quota_projects_per_community
    used = db.scalar(select(func.count()).where(Project.community_id == c.id)) or 0
    if quota and used >= quota:
        raise Conflict(f"community {c.name!r} has reached its quota of {quota} projects")
    project = Project(
        community_id=c.id, name=name, description=description, labels=clean_labels, created_by=p.user.id
    )
    _apply_settings(db, c, project, project_settings or {})
    _apply_limits(project, limits or {}, prefix="limits.")
    db.add(project)
    db.flush()
    _grant_creator(db, p, ResourceType.PROJECT, project.id)
    return project


def get_project(db: Session, p: Principal, project_id: str, action: Action = Action.PROJECT_VIEW) -> Project:
    project = db.get(Project, project_id)
    if project is None:
        raise NotFound(f"project {project_id!r} not found")
    access.authorize(db, p, action, project)
    return project


def update_project(
    db: Session,
    p: Principal,
    project_id: str,
    *,
    name: str | None = None,
    description: str | None = None,
    labels: dict[str, Any] | None = None,
    project_settings: dict[str, Any] | None = None,
) -> Project:
    project = get_project(db, p, project_id, Action.PROJECT_UPDATE)
    community = db.get(Community, project.community_id)
    assert community is not None
    if name is not None and name != project.name:
        check_name(name)
        taken = select(Project.id).where(Project.community_id == project.community_id, Project.name == name)
        if db.scalar(taken):
            raise Conflict(f"a project named {name!r} already exists in this community", field="name")
        project.name = name
    if description is not None:
        project.description = check_description(description)
    if labels is not None:
        project.labels = check_labels(labels)
    if project_settings:
        _apply_settings(db, community, project, project_settings)
    return project


def get_limits(db: Session, p: Principal, project_id: str) -> Project:
    return get_project(db, p, project_id, Action.PROJECT_VIEW_LIMITS)


def set_limits(
    db: Session, p: Principal, project_id: str, limits: dict[str, Any], prefix: str = ""
) -> Project:
    project = get_project(db, p, project_id, Action.PROJECT_SET_LIMITS)
    _apply_limits(project, limits, prefix)
    return project


def delete_project(db: Session, p: Principal, project_id: str) -> None:
    project = get_project(db, p, project_id, Action.PROJECT_DELETE)
    active = db.scalar(
        select(func.count()).where(
            WorkloadRow.project_id == project.id, WorkloadRow.state.in_(WORKLOAD_ACTIVE)
        )
    )
    if active:
        raise Conflict(f"project {project.name!r} still runs {active} workload(s): stop or cancel them first")
    _drop_bindings(db, ResourceType.PROJECT, [project.id])
    db.delete(project)


def resolve_project(db: Session, p: Principal, ref: str) -> Project:
    """A project by id, ``community/project`` or a name unique among the projects the caller sees."""
    project = db.get(Project, ref)
    if project is not None:
        access.authorize(db, p, Action.PROJECT_VIEW, project)
        return project
    q = select(Project).where(access.visible_projects(p))
    if "/" in ref:
        cname, pname = ref.split("/", 1)
        q = q.join(Community, Community.id == Project.community_id).where(
            Community.name == cname, Project.name == pname
        )
    else:
        q = q.where(Project.name == ref)
    found = list(db.scalars(q.limit(2)))
    if not found:
        raise NotFound(f"project {ref!r} not found")
    if len(found) > 1:
        raise Conflict(f"several projects are named {ref!r}: use the project id or COMMUNITY/PROJECT")
    return found[0]
