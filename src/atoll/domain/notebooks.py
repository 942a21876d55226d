"""A project's JupyterLab server as the domain sees it: open, stop, status (spec §3.2, §3.3, §4.1).

Opening records a `NotebookServer` in PREPARING; the notebook controller builds its environment,
submits its Workload (the scheduler admits it on the chosen configuration), waits for it to
answer and releases it when idle. The server is reached only through the gateway at
``/nb/<project id>/``, which authorizes every request here too (`gateway_access`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from atoll.domain import auth, communities, tenancy
from atoll.domain.access import Action, Principal
from atoll.domain.catalog import FALLBACK_CONFIGURATION
from atoll.domain.secrets import SecretBox
from atoll.domain.validation import format_duration
from atoll.domain.workloads import request_stop
from atoll.errors import Conflict, Forbidden, Invalid
from atoll.states import NOTEBOOK_FINISHED, NotebookState
from atoll.store.tables import (
    ApiToken,
    Community,
    Configuration,
    NotebookServer,
    Project,
    User,
    as_utc,
    utcnow,
)

STALE_EXEC_SECONDS = {"ONE_HOUR": 3600, "THREE_HOURS": 3 * 3600, "NO_TIMEOUT": None}


def base_path(project_id: str) -> str:
    """The public prefix a project's server lives under (also its Jupyter base_url)."""
    return f"/nb/{project_id}/"


def live_server(db: Session, project_id: str) -> NotebookServer | None:
    return db.scalar(select(NotebookServer).where(NotebookServer.live_project_id == project_id))


def latest(db: Session, project_id: str) -> NotebookServer | None:
    """The live server, else the last one that ran (for its stop reason)."""
    return live_server(db, project_id) or db.scalar(
        select(NotebookServer)
        .where(NotebookServer.project_id == project_id)
        .order_by(NotebookServer.created_at.desc())
        .limit(1)
    )


def choose_configuration(db: Session, project: Project, asked: str | None) -> str:
    """The configuration asked for, else the project's default, else c1.4; must be usable here."""
    name = asked or project.default_configuration or FALLBACK_CONFIGURATION
    field = "configuration" if asked else "settings.defaultConfiguration"
    cfg = db.get(Configuration, name)
    if cfg is None:
        raise Invalid(f"configuration {name!r} is not in the catalogue", field=field)
    if not cfg.enabled:
        raise Invalid(f"configuration {name!r} is disabled on this installation", field=field)
    community = db.get(Community, project.community_id)
    if community is not None and not communities.configuration_allowed(community, name):
        raise Invalid(f"configuration {name!r} is not allowed in this project's community", field=field)
    return name


def require_balance(project: Project) -> None:
    """Refuse to start work for a project whose balance is spent (the scheduler would fail it)."""
    if project.balance is not None and project.balance <= 0:
        raise Conflict("the project balance is insufficient: ask a project Admin to raise it")


def open_server(
    db: Session, p: Principal, project_id: str, box: SecretBox, configuration: str | None = None
) -> NotebookServer:
    """Open the project's JupyterLab (project Developer and up). Idempotent while one is live:
    the live server is returned, unless another configuration is asked for (stop it first)."""
    project = tenancy.get_project(db, p, project_id, Action.PROJECT_USE)
    live = live_server(db, project.id)
    if live is not None:
        if live.state == NotebookState.STOPPING:
            raise Conflict("the project's notebook server is stopping; open it again when it has stopped")
        if configuration and configuration != live.configuration:
            raise Conflict(
                f"the project's notebook server runs on {live.configuration}; stop it before "
                f"opening it on {configuration}"
            )
        return live
    name = choose_configuration(db, project, configuration)
    require_balance(project)
    server = NotebookServer(
        project_id=project.id,
        live_project_id=project.id,
        state=NotebookState.PREPARING,
        configuration=name,
        opened_by=p.user.id,
        token=box.seal(secrets.token_hex(32)),
        detail="preparing the environment",
    )
    try:
        with db.begin_nested():
            db.add(server)
    except IntegrityError:  # opened by someone else at the same moment: theirs is the one
        found = live_server(db, project.id)
        if found is None:
            raise
        return found
    return server


def stop_server(
    db: Session, p: Principal, project_id: str, reason: str = ""
) -> tuple[Project, NotebookServer | None]:
    """Stop the project's server (project Developer and up); the kernels go with it.
    Idempotent: with no live server, the last one (or None) comes back unchanged."""
    project = tenancy.get_project(db, p, project_id, Action.PROJECT_USE)
    server = live_server(db, project.id)
    if server is None:
        return project, latest(db, project.id)
    ask_stop(db, server, reason or f"stopped by {p.user.username}")
    return project, server


def ask_stop(db: Session, server: NotebookServer, reason: str) -> None:
    """Move a live server towards STOPPED, through its Workload when it has one."""
    if server.state in NOTEBOOK_FINISHED or server.state == NotebookState.STOPPING:
        return
    server.detail = reason
    if server.workload_id is None:  # still preparing: nothing runs yet
        finish(server, NotebookState.STOPPED, reason)
        return
    request_stop(db, server.workload_id, reason)
    server.state = NotebookState.STOPPING
    server.stopping_at = utcnow()


def finish(server: NotebookServer, state: str, detail: str) -> None:
    server.state = state
    server.detail = detail
    server.finished_at = utcnow()
    server.live_project_id = None


def get_status(db: Session, p: Principal, project_id: str) -> tuple[Project, NotebookServer | None]:
    project = tenancy.get_project(db, p, project_id, Action.PROJECT_VIEW)
    return project, latest(db, project.id)


@dataclass(frozen=True)
class Phase:
    name: str
    at: datetime
    seconds: float | None  # how long the phase lasted (None: still in it)


def timeline(server: NotebookServer, now: datetime | None = None) -> list[Phase]:
    """The spawn timeline shown while the user waits: preparing → queued → starting → ready → …"""
    now = now or utcnow()
    marks = [
        ("preparing", server.created_at),
        ("queued", server.queued_at),
        ("starting", server.started_at),
        ("ready", server.ready_at),
        ("stopping", server.stopping_at),
        ("stopped" if server.state != NotebookState.FAILED else "failed", server.finished_at),
    ]
    present = [(n, as_utc(t)) for n, t in marks if t is not None]
    out: list[Phase] = []
    for i, (name, at) in enumerate(present):
        end = present[i + 1][1] if i + 1 < len(present) else now
        final = name in ("stopped", "failed")
        out.append(Phase(name, at, None if final else round((end - at).total_seconds(), 3)))
    return out


def release_at(server: NotebookServer, project: Project) -> datetime | None:
    """When the idle server will be released if nothing happens (READY servers only)."""
    if server.state != NotebookState.READY or server.last_activity_at is None:
        return None
    return as_utc(server.last_activity_at) + timedelta(seconds=project.vm_inactivity_timeout_s)


def describe(db: Session, project: Project, server: NotebookServer | None) -> dict[str, Any]:
    """What the API and the web UI show about a project's server (API field names)."""
    if server is None:
        none = dict.fromkeys(("id", "configuration", "url", "openedBy", "idle"))
        return {"projectId": project.id, "state": NotebookState.NONE, "detail": "", "timeline": [], **none}
    now = utcnow()
    opener = db.get(User, server.opened_by)
    ready = server.state == NotebookState.READY
    release = release_at(server, project)
    return {
        "projectId": project.id,
        "id": server.id,
        "state": server.state,
        "configuration": server.configuration,
        "detail": server.detail,
        "url": base_path(project.id) + "lab" if ready else None,
        "openedBy": opener.username if opener else None,
        "timeline": [{"phase": p.name, "at": p.at, "seconds": p.seconds} for p in timeline(server, now)],
        "idle": {
            "timeout": format_duration(project.vm_inactivity_timeout_s),
            "lastActivityAt": server.last_activity_at,
            "lastActivity": server.last_activity,
            "releaseAt": release,
            "secondsLeft": max(0.0, round((release - now).total_seconds(), 1)) if release else None,
        }
        if ready
        else None,
    }


IDE_LINK_DAYS = 30


def create_ide_link(
    db: Session, p: Principal, project_id: str, expires_in_days: int | None = IDE_LINK_DAYS
) -> tuple[ApiToken, str]:
    """A token for an external IDE (spec §4.1: VS Code's "Existing Jupyter Server"): it opens
    this project's JupyterLab through the gateway, as its maker, and nothing else; revocable like
    any token. The community's ``externalIde`` feature must be on (it is off by default)."""
    project = tenancy.get_project(db, p, project_id, Action.PROJECT_USE)
    community = db.get(Community, project.community_id)
    if community is None or not communities.restrictions_of(community)["features"]["externalIde"]:
        name = community.name if community else project.community_id
        raise Forbidden(
            f"the external IDE link is off in community {name!r}: a community Admin turns it on "
            f"(atoll community restrictions set {name} --feature externalIde=true)"
        )
    return auth.create_token(db, p.user, f"ide:{project.name}"[:64], expires_in_days, project_id=project.id)
