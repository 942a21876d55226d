"""Projects' Docker images as a resource (spec §4.3).

A project Editor writes a Dockerfile (and, for a private base image, a user name and the project
secret holding its password); the images controller builds it. Images are immutable: a row is
built once, a failed one may be built again, a new Dockerfile is a new tag. The spec's quota is
per community (3). A READY image can be *activated*: the project's notebooks then run inside it;
jobs (``env.docker``) and nodes (``image``) name it by id or ``name[:tag]``. Viewing follows the
project; making, building, activating and deleting need its Editor role.
"""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from atoll.domain.access import Action, Principal
from atoll.domain.environments import can_view_project
from atoll.domain.secrets import check_secret_name
from atoll.domain.tenancy import get_project
from atoll.domain.validation import check_description
from atoll.errors import Conflict, Invalid, NotFound
from atoll.states import ImageStatus
from atoll.store.tables import Project, ProjectImage, Secret

# Docker's rules for a repository path (lower case, separators inside) and for a tag.
_REPOSITORY = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
MAX_DOCKERFILE = 64 * 1024
_USERNAME = re.compile(r"^[\x21-\x7e]{1,128}$")


def check_repository(name: str) -> str:
    if len(name) > 63 or not _REPOSITORY.match(name):
        raise Invalid(
            "name: a repository name of lower-case letters, digits and . _ - (inside), "
            f"at most 63 characters, e.g. tensorflow (got {name!r})",
            field="name",
        )
    return name


def check_tag(tag: str) -> str:
    if not _TAG.match(tag):
        raise Invalid(
            f"tag: letters, digits, _ . - (not first), at most 128 characters, e.g. 1.0 (got {tag!r})",
            field="tag",
        )
    return tag


def local_tag(project_id: str, name: str, tag: str) -> str:
    """Its name on the daemon (and, under the registry's address, in the registry)."""
    return f"atoll/{project_id.lower()}/{name}:{tag}"


def list_images(db: Session, p: Principal, project_id: str) -> list[ProjectImage]:
    project = get_project(db, p, project_id)
    return list(
        db.scalars(
            select(ProjectImage)
            .where(ProjectImage.project_id == project.id)
            .order_by(ProjectImage.name, ProjectImage.created_at)
        )
    )


def find(db: Session, project: Project, ref: str) -> ProjectImage | None:
    """The project's image by id, ``name:tag``, or ``name`` (its newest tag)."""
    row = db.get(ProjectImage, ref)
    if row is not None:
        return row if row.project_id == project.id else None
    name, sep, tag = ref.partition(":")
    q = select(ProjectImage).where(ProjectImage.project_id == project.id, ProjectImage.name == name)
    if sep:
        return db.scalar(q.where(ProjectImage.tag == tag))
    return db.scalar(q.order_by(ProjectImage.created_at.desc()).limit(1))


def get_image(db: Session, p: Principal, ref: str, project_id: str | None = None) -> ProjectImage:
    """An image by id (any project the caller may view), or by name[:tag] in ``project_id``."""
    row = db.get(ProjectImage, ref)
    if row is None and project_id:
        row = find(db, get_project(db, p, project_id), ref)
    if row is None or not can_view_project(db, p, row.project_id):
        raise NotFound(f"no image {ref!r}" + ("" if project_id else " (give the project to find it by name)"))
    return row


def create_image(
    db: Session,
    p: Principal,
    project_id: str,
    *,
    name: str,
    tag: str,
    dockerfile: str,
    description: str = "",
    username: str | None = None,
    password_secret: str | None = None,
    quota: int = 0,
) -> ProjectImage:
    """A new image of the project, queued for its build; ``quota``: images per community (0: none)."""
    project = get_project(db, p, project_id, Action.PROJECT_UPDATE)
    check_repository(name)
    check_tag(tag)
    check_description(description)
    if not dockerfile.strip():
        raise Invalid("dockerfile: write the Dockerfile's text (FROM ... first)", field="dockerfile")
    if len(dockerfile.encode()) > MAX_DOCKERFILE:
        raise Invalid(f"dockerfile: at most {MAX_DOCKERFILE // 1024} KiB", field="dockerfile")
    if "\0" in dockerfile:
        raise Invalid("dockerfile: a NUL character is not allowed", field="dockerfile")
    if (username is None) != (password_secret is None):
        raise Invalid(
            "passwordSecret: give the user name and the secret with its password together",
            field="passwordSecret" if username else "username",
        )
    if username is not None and not _USERNAME.match(username):
        raise Invalid("username: 1 to 128 printable characters, no spaces", field="username")
    if password_secret is not None:
        check_secret_name(password_secret)
        if not db.scalar(
            select(Secret.id).where(Secret.project_id == project.id, Secret.name == password_secret)
        ):
            raise Invalid(
                f"passwordSecret: the project has no secret {password_secret!r} (atoll secret create)",
                field="passwordSecret",
            )
    have = db.scalar(select(func.count()).where(ProjectImage.community_id == project.community_id)) or 0
    if quota and have >= quota:
        raise Conflict(
            f"the community has {have} Docker images, its quota (ATOLL_QUOTA_IMAGES_PER_COMMUNITY): "
            "delete one first (atoll image delete)",
            field="name",
        )
    if db.scalar(
        select(ProjectImage.id).where(
            ProjectImage.project_id == project.id, ProjectImage.name == name, ProjectImage.tag == tag
        )
    ):
        raise Conflict(
            f"the project already has the image {name}:{tag}: images are immutable, use a new tag",
            field="tag",
        )
    row = ProjectImage(
        project_id=project.id,
        community_id=project.community_id,
        name=name,
        tag=tag,
        description=description,
        dockerfile=dockerfile,
        username=username,
        password_secret=password_secret,
        status=ImageStatus.PENDING,
        detail="queued for its build",
        created_by=p.user.id,
    )
    db.add(row)
    db.flush()
    return row


def rebuild(db: Session, p: Principal, row: ProjectImage) -> ProjectImage:
    """Build a failed image again (a built one is immutable; a queued one is built anyway)."""
    get_project(db, p, row.project_id, Action.PROJECT_UPDATE)
    if row.status == ImageStatus.FAILED:
        row.status, row.detail, row.failed_step = ImageStatus.PENDING, "queued again", ""
    return row


def activate(db: Session, p: Principal, row: ProjectImage) -> Project:
    """The project's notebooks run inside this image from their next start."""
    project = get_project(db, p, row.project_id, Action.PROJECT_UPDATE)
    if row.status != ImageStatus.READY:
        raise Conflict(
            f"image {row.name}:{row.tag} is {row.status}: only a built image can be activated "
            "(atoll image log shows its build)",
            field="imageId",
        )
    project.active_image_id = row.id
    return project


def deactivate(db: Session, p: Principal, project_id: str) -> Project:
    """Back to the project's environment (DataSphere: activate the default image)."""
    project = get_project(db, p, project_id, Action.PROJECT_UPDATE)
    project.active_image_id = None
    return project


def active_image(db: Session, project: Project) -> ProjectImage | None:
    if not project.active_image_id:
        return None
    row = db.get(ProjectImage, project.active_image_id)
    return row if row is not None and row.status == ImageStatus.READY else None


def delete_image(db: Session, p: Principal, row: ProjectImage) -> list[str]:
    """Delete an image (not the active one); returns its names on the daemon, to untag them."""
    project = get_project(db, p, row.project_id, Action.PROJECT_UPDATE)
    if project.active_image_id == row.id:
        raise Conflict(
            f"{row.name}:{row.tag} is the project's active image: deactivate it first "
            "(atoll image deactivate)",
            field="imageId",
        )
    if row.status == ImageStatus.BUILDING:
        raise Conflict(f"{row.name}:{row.tag} is being built: delete it when the build ends", field="imageId")
    names = [n for n in (local_tag(row.project_id, row.name, row.tag), row.reference) if n]
    db.delete(row)
    return sorted(set(names))


def runnable(db: Session, project: Project, ref: str) -> str | None:
    """What a job's ``env.docker`` or a node's ``image`` runs when it names one of the project's
    images (by id or name[:tag]): that image's content id. None: not a project image's name (a
    plain image of the daemon). Invalid when the image is not built."""
    row = find(db, project, ref) if re.match(r"^[\w.:/-]{1,200}$", ref) else None
    if row is None:
        return None
    if row.status != ImageStatus.READY or not row.image_id:
        raise Invalid(
            f"image {row.name}:{row.tag} is {row.status}, not built: see `atoll image log {row.id}`",
            field="image",
        )
    return row.image_id
