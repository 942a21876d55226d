"""Projects' Docker images (spec §4.3): build from a Dockerfile, follow the build, activate."""

from __future__ import annotations

from fastapi import APIRouter, Path, Query, Response

from atoll.api.bounds import MAX_ID
from atoll.api.common import act, project_out
from atoll.api.deps import CtxDep
from atoll.api.schemas_images import ImageCreate, ImageLog, ImageOut
from atoll.api.schemas_tenancy import ProjectOut
from atoll.domain import images, tenancy
from atoll.domain.access import Action
from atoll.errors import Conflict
from atoll.store.tables import Project, ProjectImage

router = APIRouter()
MAX_REF = 200  # an id, or name:tag
ProjectQuery = Query(None, alias="projectId", max_length=MAX_ID, description="Find the image by name in it")
MAX_LOG_PART = 256 * 1024


def image_out(row: ProjectImage, project: Project | None) -> ImageOut:
    return ImageOut(
        id=row.id,
        project_id=row.project_id,
        name=row.name,
        tag=row.tag,
        description=row.description,
        dockerfile=row.dockerfile,
        username=row.username,
        password_secret=row.password_secret,
        status=row.status,
        detail=row.detail,
        failed_step=row.failed_step,
        reference=row.reference,
        image_id=row.image_id,
        python_version=row.python_version,
        has_jupyterlab=row.has_jupyterlab,
        size_bytes=row.size_bytes,
        build_seconds=row.build_seconds,
        active=project is not None and project.active_image_id == row.id,
        created_at=row.created_at,
        started_at=row.started_at,
        built_at=row.built_at,
    )


def _out(ctx: CtxDep, row: ProjectImage) -> ImageOut:
    return image_out(row, ctx.db.get(Project, row.project_id))


@router.get(
    "/projects/{project_id}/images",
    response_model=list[ImageOut],
    openapi_extra=act(Action.PROJECT_VIEW),
    tags=["images"],
)
def list_images(project_id: str, ctx: CtxDep) -> list[ImageOut]:
    return [_out(ctx, r) for r in images.list_images(ctx.db, ctx.me, project_id)]


@router.post(
    "/projects/{project_id}/images",
    response_model=ImageOut,
    status_code=201,
    openapi_extra=act(Action.PROJECT_UPDATE),
    tags=["images"],
)
def create_image(project_id: str, body: ImageCreate, ctx: CtxDep) -> ImageOut:
    """An image from a Dockerfile, built next on the installation's Docker daemon; follow it with
    GET /images/{id}/log."""
    tenancy.get_project(ctx.db, ctx.me, project_id, Action.PROJECT_UPDATE)  # who asks, first
    if ctx.services.images is None:
        raise Conflict(
            "this installation builds no Docker images: it has no Docker daemon (ATOLL_DOCKER_HOST)",
            field="dockerfile",
        )
    row = images.create_image(
        ctx.db,
        ctx.me,
        project_id,
        name=body.name,
        tag=body.tag,
        dockerfile=body.dockerfile,
        description=body.description,
        username=body.username,
        password_secret=body.password_secret,
        quota=ctx.settings.quota_images_per_community,
    )
    return ctx.commit_and_wake(_out(ctx, row), "images")


@router.get(
    "/images/{ref}",
    response_model=ImageOut,
    openapi_extra=act(Action.PROJECT_VIEW),
    tags=["images"],
)
def get_image(
    ctx: CtxDep, ref: str = Path(max_length=MAX_REF), project_id: str | None = ProjectQuery
) -> ImageOut:
    """An image by id, or by name[:tag] with ``projectId``."""
    return _out(ctx, images.get_image(ctx.db, ctx.me, ref, project_id))


@router.get(
    "/images/{ref}/log",
    response_model=ImageLog,
    openapi_extra=act(Action.PROJECT_VIEW),
    tags=["images"],
)
def image_log(
    ctx: CtxDep,
    ref: str = Path(max_length=MAX_REF),
    project_id: str | None = ProjectQuery,
    offset: int = Query(0, ge=0, le=1 << 31),
) -> ImageLog:
    """The build's output from ``offset`` (as it comes while BUILDING; ask again from next_offset)."""
    row = images.get_image(ctx.db, ctx.me, ref, project_id)
    text = row.log or ""
    start = min(offset, len(text))
    part = text[start : start + MAX_LOG_PART]
    return ImageLog(
        id=row.id,
        status=row.status,
        detail=row.detail,
        failed_step=row.failed_step,
        offset=start,
        next_offset=start + len(part),
        log=part,
    )


@router.post(
    "/images/{image_id}:build",
    response_model=ImageOut,
    status_code=202,
    openapi_extra=act(Action.PROJECT_UPDATE),
    tags=["images"],
)
def build_image(ctx: CtxDep, image_id: str = Path(max_length=MAX_ID)) -> ImageOut:
    """Build a failed image again (a built one is immutable)."""
    row = images.get_image(ctx.db, ctx.me, image_id)
    return ctx.commit_and_wake(_out(ctx, images.rebuild(ctx.db, ctx.me, row)), "images")


@router.post(
    "/images/{image_id}:activate",
    response_model=ProjectOut,
    openapi_extra=act(Action.PROJECT_UPDATE),
    tags=["images"],
)
def activate_image(ctx: CtxDep, image_id: str = Path(max_length=MAX_ID)) -> ProjectOut:
    """The project's notebooks run inside this image from their next start."""
    row = images.get_image(ctx.db, ctx.me, image_id)
    project = images.activate(ctx.db, ctx.me, row)
    ctx.db.commit()
    return project_out(ctx.db, project)


@router.post(
    "/projects/{project_id}/images:deactivate",
    response_model=ProjectOut,
    openapi_extra=act(Action.PROJECT_UPDATE),
    tags=["images"],
)
def deactivate_image(project_id: str, ctx: CtxDep) -> ProjectOut:
    """The project's notebooks run in its environment again from their next start."""
    project = images.deactivate(ctx.db, ctx.me, project_id)
    ctx.db.commit()
    return project_out(ctx.db, project)


@router.delete(
    "/images/{image_id}",
    status_code=204,
    openapi_extra=act(Action.PROJECT_UPDATE),
    tags=["images"],
)
def delete_image(ctx: CtxDep, image_id: str = Path(max_length=MAX_ID)) -> Response:
    row = images.get_image(ctx.db, ctx.me, image_id)
    names = images.delete_image(ctx.db, ctx.me, row)
    ctx.db.commit()
    if ctx.services.images is not None:
        ctx.services.images.builder.remove(names)
    return Response(status_code=204)
