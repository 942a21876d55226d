"""Environments as a resource (issue 17): the installation's built-in ones and projects' own.

A project's environment is a list of requirements on a Python version, alone or on top of a
built-in environment: then it resolves to the built-in's pins, less those its requirements name,
plus its requirements, so a project adds or upgrades packages without losing the stack. Rows are
immutable once made (a new list is a new environment); the environments controller builds them.
Viewing follows the project (a built-in one: any signed-in user); making, rebuilding and deleting
need the project's Editor role.
"""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from atoll.domain import access
from atoll.domain.access import Action, Principal
from atoll.domain.tenancy import get_project
from atoll.domain.validation import check_description, check_name
from atoll.errors import Conflict, Invalid, NotFound
from atoll.jobspec.requirements import normalize_requirement, requirement_name
from atoll.states import EnvironmentStatus
from atoll.store.tables import EnvironmentRow, Project

MAX_REQUIREMENTS = 500
_PYTHON = re.compile(r"^3\.\d{1,2}$")


def builtins(db: Session) -> list[EnvironmentRow]:
    return list(
        db.scalars(
            select(EnvironmentRow).where(EnvironmentRow.project_id.is_(None)).order_by(EnvironmentRow.name)
        )
    )


def default_builtin(db: Session) -> EnvironmentRow | None:
    return db.scalar(
        select(EnvironmentRow).where(EnvironmentRow.project_id.is_(None), EnvironmentRow.is_default.is_(True))
    )


def list_environments(db: Session, p: Principal, project_id: str | None = None) -> list[EnvironmentRow]:
    """The built-in environments, and with ``project_id`` that project's own too."""
    access.authorize(db, p, Action.CATALOG_VIEW)
    rows = builtins(db)
    if project_id:
        project = get_project(db, p, project_id)
        rows += list(
            db.scalars(
                select(EnvironmentRow)
                .where(EnvironmentRow.project_id == project.id)
                .order_by(EnvironmentRow.name)
            )
        )
    return rows


def get_environment(db: Session, p: Principal, ref: str, project_id: str | None = None) -> EnvironmentRow:
    """An environment by id, or by name (a project's own first, then a built-in one)."""
    access.authorize(db, p, Action.CATALOG_VIEW)
    row = db.get(EnvironmentRow, ref)
    if row is None:
        if project_id:
            project = get_project(db, p, project_id)
            row = by_name(db, project, ref)
        else:
            row = db.scalar(
                select(EnvironmentRow).where(EnvironmentRow.project_id.is_(None), EnvironmentRow.name == ref)
            )
    if row is None or (row.project_id is not None and not can_view_project(db, p, row.project_id)):
        known = ", ".join(r.name for r in builtins(db)) or "none"
        raise NotFound(f"no environment {ref!r} (built-in ones: {known})", field="name")
    return row


def can_view_project(db: Session, p: Principal, project_id: str) -> bool:
    """Whether the caller may see the project's resources (its environments, its images)."""
    project = db.get(Project, project_id)
    return project is not None and access.can(db, p, Action.PROJECT_VIEW, project)


def by_name(db: Session, project: Project, name: str) -> EnvironmentRow | None:
    """The project's own environment of that name, else the built-in one."""
    own = db.scalar(
        select(EnvironmentRow).where(EnvironmentRow.project_id == project.id, EnvironmentRow.name == name)
    )
    return own or db.scalar(
        select(EnvironmentRow).where(EnvironmentRow.project_id.is_(None), EnvironmentRow.name == name)
    )


def of_project(db: Session, project: Project) -> EnvironmentRow | None:
    """The environment the project's notebooks and jobs without env.python run in: its setting,
    else the installation's default built-in one (None before the server registered it)."""
    if project.default_environment:
        found = by_name(db, project, project.default_environment)
        if found is not None:
            want(found)  # a big built-in one is built once somebody needs it
            return found
    return default_builtin(db)


def resolve(base: list[str], requirements: list[str]) -> list[str]:
    """The base's pins, less those of packages the requirements name, then the requirements."""
    named = {requirement_name(r) for r in requirements}
    kept = [pin for pin in base if requirement_name(pin) not in named]
    return [*kept, *requirements]


def create_environment(
    db: Session,
    p: Principal,
    project_id: str,
    *,
    name: str,
    requirements: list[str],
    base: str | None = None,
    python_version: str | None = None,
    description: str = "",
    quota: int = 0,
) -> EnvironmentRow:
    """A new environment of the project, queued for its build (the controller builds it);
    ``quota``: how many the project may have (0: no limit)."""
    project = get_project(db, p, project_id, Action.PROJECT_UPDATE)
    have = db.scalar(select(func.count()).where(EnvironmentRow.project_id == project.id)) or 0
    if quota and have >= quota:
        raise Conflict(
            f"the project has {have} environments, its quota: delete one first (atoll env delete)",
            field="name",
        )
    check_name(name)
    check_description(description)
    if len(requirements) > MAX_REQUIREMENTS:
        raise Invalid(
            f"requirements: at most {MAX_REQUIREMENTS} (got {len(requirements)})", field="requirements"
        )
    reqs = [normalize_requirement(r, f"requirements[{i}]") for i, r in enumerate(requirements)]
    base_row: EnvironmentRow | None = None
    if base is not None:
        base_row = db.scalar(
            select(EnvironmentRow).where(EnvironmentRow.project_id.is_(None), EnvironmentRow.name == base)
        )
        if base_row is None:
            known = ", ".join(r.name for r in builtins(db)) or "none"
            raise Invalid(f"base: no built-in environment {base!r} (there are: {known})", field="base")
    if not reqs and base_row is None:
        raise Invalid("requirements: give at least one, or a base environment", field="requirements")
    fallback = base_row or default_builtin(db)
    version = python_version or (fallback.python_version if fallback is not None else "")
    if not _PYTHON.match(version):
        raise Invalid(f"pythonVersion: write major.minor, e.g. 3.11 (got {version!r})", field="pythonVersion")
    if base_row is not None and python_version and python_version != base_row.python_version:
        raise Invalid(
            f"pythonVersion: {base!r} is built on Python {base_row.python_version}; "
            "an environment on top of it uses the same",
            field="pythonVersion",
        )
    if by_name_own(db, project, name) is not None:
        raise Conflict(f"the project already has an environment named {name!r}", field="name")
    if db.scalar(
        select(EnvironmentRow.id).where(EnvironmentRow.project_id.is_(None), EnvironmentRow.name == name)
    ):
        raise Conflict(f"{name!r} is a built-in environment's name: choose another", field="name")
    row = EnvironmentRow(
        project_id=project.id,
        name=name,
        title=name,
        description=description,
        base=base_row.name if base_row else None,
        python_version=version,
        requirements=reqs,
        resolved=resolve(list(base_row.resolved) if base_row else [], reqs),
        status=EnvironmentStatus.PENDING,
        created_by=p.user.id,
    )
    db.add(row)
    db.flush()
    return row


def by_name_own(db: Session, project: Project, name: str) -> EnvironmentRow | None:
    return db.scalar(
        select(EnvironmentRow).where(EnvironmentRow.project_id == project.id, EnvironmentRow.name == name)
    )


def _editable(db: Session, p: Principal, row: EnvironmentRow) -> Project | None:
    """The row's project, once the caller may change it; None for a built-in (admins only)."""
    if row.project_id is None:
        access.authorize(db, p, Action.SYSTEM_MANAGE)
        return None
    return get_project(db, p, row.project_id, Action.PROJECT_UPDATE)


def rebuild(db: Session, p: Principal, row: EnvironmentRow) -> EnvironmentRow:
    """Queue a failed environment's build again, or a built-in one nobody chose yet (a ready one
    is immutable: nothing to do)."""
    _editable(db, p, row)
    if row.status == EnvironmentStatus.FAILED:
        row.status, row.detail = EnvironmentStatus.PENDING, "queued again"
    want(row)
    return row


def want(row: EnvironmentRow) -> None:
    """Have the controller build it (a big built-in one waits for its first user)."""
    if not row.wanted:
        row.wanted = True
        if row.status == EnvironmentStatus.PENDING:
            row.detail = "queued: a project chose it"


def delete_environment(db: Session, p: Principal, row: EnvironmentRow) -> None:
    """Delete a project's environment (its build stays in the shared cache for others with the
    same content); not the one the project runs in by default."""
    project = _editable(db, p, row)
    if project is None:
        raise Invalid("built-in environments are the installation's: they cannot be deleted", field="name")
    if project.default_environment == row.name:
        raise Conflict(
            f"{row.name!r} is the project's default environment: set settings.defaultEnvironment to "
            "another first",
            field="name",
        )
    db.delete(row)
