"""Organizations, communities and projects (spec §1) with the rules on who may do what."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from atoll.capacity import Inventory
from atoll.domain import access, catalog
from atoll.domain.access import Action, Principal, ResourceType
from atoll.domain.catalog import FALLBACK_CONFIGURATION
from atoll.domain.communities import configuration_allowed
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
    EnvironmentRow,
    Group,
    Organization,
    Project,
    WorkloadRow,
)

STALE_EXEC_MODES = ("ONE_HOUR", "THREE_HOURS", "NO_TIMEOUT")
IDES = ("JUPYTER_LAB",)


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
    access.grant_creator(db, p, ResourceType.ORGANIZATION, org.id)
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
    access.drop_bindings(db, ResourceType.BILLING_ACCOUNT, ba_ids)
    access.drop_bindings(db, ResourceType.ORGANIZATION, [org.id])
    db.delete(org)


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
        elif key == "defaultEnvironment":
            if value is not None:
                check_name(value, f)
                visible = or_(EnvironmentRow.project_id.is_(None), EnvironmentRow.project_id == project.id)
                chosen = db.scalars(select(EnvironmentRow).where(EnvironmentRow.name == value, visible)).all()
                if not chosen:
                    raise Invalid(
                        f"no environment {value!r} in this project or built in (see `atoll env list -p`)",
                        field=f,
                    )
                for row in chosen:  # a big built-in one is built once a project chooses it
                    if not row.wanted:
                        row.wanted = True
                        row.detail = "queued: a project chose it"
            project.default_environment = value
        elif key == "ide":
            if value not in IDES:
                raise Invalid(f"{f} must be one of {', '.join(IDES)} (got {value!r})", field=f)
            project.ide = value
        else:
            raise Invalid(
                f"unknown project setting {key!r}; known: defaultConfiguration, defaultEnvironment, "
                "vmInactivityTimeout, staleExecTimeoutMode, ide",
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
    inventory: Inventory | None = None,
) -> Project:
    """A new project in the community. ``inventory``: this installation's compute pool; where
    DataSphere's default configuration (c1.4) cannot run on it (a 2-core machine), the project's
    default becomes the largest configuration that can, so that its first job runs as written."""
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
    if project.default_configuration is None and inventory is not None:
        project.default_configuration = catalog.fitting_default(
            db,
            inventory,
            settings.pool_overcommit,
            lambda name: configuration_allowed(c, name),
            FALLBACK_CONFIGURATION,
        )
    db.add(project)
    db.flush()
    access.grant_creator(db, p, ResourceType.PROJECT, project.id)
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
    access.drop_bindings(db, ResourceType.PROJECT, [project.id])
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
