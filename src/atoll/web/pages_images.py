"""A project's Docker images in the web UI (spec §4.3): build one from a Dockerfile, follow its
build, activate it for the project's notebooks, delete it.

The section sits in the project's Settings tab, which loads it from here (``GET
/projects/{id}/images``, so the tab's own values need none of it); without JavaScript that
address is a page of its own, and the forms post/redirect/get to it. The domain checks access
(viewing follows the project; the rest needs its Editor role), as ``api/routes_images.py`` does.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from atoll.domain import access, images, secrets, tenancy
from atoll.domain.access import Action
from atoll.errors import Conflict, DomainError, NotFound
from atoll.states import ImageStatus
from atoll.store.tables import Project, ProjectImage
from atoll.web import queries
from atoll.web.context import FormError, WebCtx, WebRoute, redirect, render, signed_in
from atoll.web.pages_community import crumbs_for

router = APIRouter(route_class=WebRoute, include_in_schema=False)
Ctx = Annotated[WebCtx, Depends(signed_in)]
NO_ERROR = FormError("", None, "")
LOG_TAIL = 32 * 1024  # characters of a build's output shown in the page (the API has all of it)
CREATE_FIELDS = ("name", "tag", "description", "dockerfile", "username", "passwordSecret")
NO_DAEMON = "this installation has no Docker daemon (ATOLL_DOCKER_HOST)"


def _controller(ctx: WebCtx) -> Any:
    """The images controller (services.images), or None where the installation has no Docker
    daemon."""
    return ctx.request.app.state.services.images


def _size(n: int | None) -> str:
    if not n:
        return "—"
    if n >= 10**9:
        return f"{n / 10**9:.1f} GB"
    return f"{n / 10**6:.0f} MB"


def _row(row: ProjectImage, project: Project) -> dict[str, Any]:
    log = row.log or ""
    return {
        "id": row.id,
        "name": row.name,
        "tag": row.tag,
        "description": row.description,
        "status": row.status,
        "detail": row.detail,
        "failed_step": row.failed_step,
        "python_version": row.python_version,
        "has_jupyterlab": row.has_jupyterlab,
        "size": _size(row.size_bytes),
        "build_seconds": row.build_seconds,
        "reference": row.reference,
        "active": project.active_image_id == row.id,
        "log": log[-LOG_TAIL:],
        "log_cut": len(log) > LOG_TAIL,
    }


def images_view(
    ctx: WebCtx, project_id: str, *, notice: str | None = None, error: FormError = NO_ERROR
) -> dict[str, Any]:
    project = tenancy.get_project(ctx.db, ctx.me, project_id)
    rows = [_row(r, project) for r in images.list_images(ctx.db, ctx.me, project.id)]
    can_update = access.can(ctx.db, ctx.me, Action.PROJECT_UPDATE, project)
    daemon = _controller(ctx) is not None
    return {
        "p": project,
        "base": f"/projects/{project.id}",
        "image_rows": rows,
        "images_building": any(r["status"] in (ImageStatus.PENDING, ImageStatus.BUILDING) for r in rows),
        "images_can_update": can_update,
        "images_daemon": daemon,
        "images_quota": ctx.settings.quota_images_per_community,
        "image_secrets": [s.name for s in secrets.list_secrets(ctx.db, ctx.me, project.id)]
        if can_update and daemon
        else [],
        "images_notice": notice,
        "error": error,
        "ImageStatus": ImageStatus,
    }


def _show(
    ctx: WebCtx, project_id: str, *, notice: str | None = None, error: FormError = NO_ERROR, status: int = 200
) -> Response:
    """The section (htmx: the settings tab loads it, its forms replace it), or the whole page."""
    values = images_view(ctx, project_id, notice=notice, error=error)
    if ctx.htmx:
        return render(
            ctx, "_project_images.html", status=status, table_only=ctx.hx_target("images-table"), **values
        )
    project = values["p"]
    c = queries.community_of(ctx.db, project)
    crumbs = crumbs_for(ctx, c, link_self=access.can(ctx.db, ctx.me, Action.COMMUNITY_VIEW, c))
    crumbs.append({"label": project.name, "url": f"/projects/{project.id}?tab=settings"})
    crumbs.append({"label": "Docker images", "url": ""})
    return render(ctx, "project_images.html", status=status, crumbs=crumbs, table_only=False, **values)


def _done(ctx: WebCtx, project_id: str, notice: str) -> Response:
    if ctx.htmx:
        return _show(ctx, project_id, notice=notice)
    return redirect(ctx, f"/projects/{project_id}/images", flash=notice)


def _failed(
    ctx: WebCtx, project_id: str, form: str, e: DomainError, values: dict[str, Any] | None = None
) -> Response:
    # Nothing is saved: each form is one unit of work.
    ctx.rollback()
    return _show(ctx, project_id, error=FormError.of(form, e, values), status=e.status)


def _image(ctx: WebCtx, project_id: str, image_id: str) -> ProjectImage:
    row = images.get_image(ctx.db, ctx.me, image_id)
    if row.project_id != project_id:
        raise NotFound(f"no image {image_id!r} in this project")
    return row


@router.get("/projects/{project_id}/images")
def project_images(project_id: str, ctx: Ctx) -> Response:
    return _show(ctx, project_id)


@router.post("/projects/{project_id}/images")
def create_image(project_id: str, ctx: Ctx) -> Response:
    values = {k: ctx.value(k) for k in CREATE_FIELDS}
    try:
        if _controller(ctx) is None:
            raise Conflict(f"no image can be built: {NO_DAEMON}")
        row = images.create_image(
            ctx.db,
            ctx.me,
            project_id,
            name=values["name"],
            tag=values["tag"] or "latest",
            dockerfile=values["dockerfile"],
            description=values["description"],
            username=values["username"] or None,
            password_secret=values["passwordSecret"] or None,
            quota=ctx.settings.quota_images_per_community,
        )
        ctx.commit(wake="images")
    except NotFound:
        raise
    except DomainError as e:
        return _failed(ctx, project_id, "image", e, values)
    return _done(ctx, project_id, f"Image {row.name}:{row.tag} queued for its build")


@router.post("/projects/{project_id}/images/deactivate")
def deactivate_image(project_id: str, ctx: Ctx) -> Response:
    try:
        images.deactivate(ctx.db, ctx.me, project_id)
        ctx.commit()
    except NotFound:
        raise
    except DomainError as e:
        return _failed(ctx, project_id, "images", e)
    return _done(ctx, project_id, "Notebooks run in the project's environment from their next start")


@router.post("/projects/{project_id}/images/{image_id}/activate")
def activate_image(project_id: str, image_id: str, ctx: Ctx) -> Response:
    try:
        row = _image(ctx, project_id, image_id)
        images.activate(ctx.db, ctx.me, row)
        ctx.commit()
    except NotFound:
        raise
    except DomainError as e:
        return _failed(ctx, project_id, "images", e)
    return _done(ctx, project_id, f"Notebooks run in {row.name}:{row.tag} from their next start")


@router.post("/projects/{project_id}/images/{image_id}/build")
def rebuild_image(project_id: str, image_id: str, ctx: Ctx) -> Response:
    try:
        if _controller(ctx) is None:
            raise Conflict(f"no image can be built: {NO_DAEMON}")
        row = images.rebuild(ctx.db, ctx.me, _image(ctx, project_id, image_id))
        ctx.commit(wake="images")
    except NotFound:
        raise
    except DomainError as e:
        return _failed(ctx, project_id, "images", e)
    return _done(ctx, project_id, f"Image {row.name}:{row.tag} queued for its build again")


@router.post("/projects/{project_id}/images/{image_id}/delete")
def delete_image(project_id: str, image_id: str, ctx: Ctx) -> Response:
    try:
        row = _image(ctx, project_id, image_id)
        label = f"{row.name}:{row.tag}"
        names = images.delete_image(ctx.db, ctx.me, row)
        ctx.commit()
    except NotFound:
        raise
    except DomainError as e:
        return _failed(ctx, project_id, "images", e)
    controller = _controller(ctx)
    if controller is not None:
        controller.builder.remove(names)  # untag it on the daemon, as the API does
    return _done(ctx, project_id, f"Image {label} deleted")
