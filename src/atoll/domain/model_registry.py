"""Saved models (spec §8.1): named, versioned, with their files kept as blobs.

A notebook or job saves a model with ``atoll.models.save(obj, name)``: the SDK writes a model
directory (``meta.json`` + the model file, see ``atoll.models``) into the project's outbox and
Atoll registers it here as the next version of that name. Nodes pin one version; ``load(name)``
reads the latest from the project's models directory, which Atoll keeps materialized.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from atoll.domain import tenancy
from atoll.domain.access import Action, Principal
from atoll.domain.errors import Conflict, Invalid, NotFound
from atoll.domain.validation import check_resource_name
from atoll.storage.blobs import BlobStore
from atoll.store.models import Blob, Model, Node, Project, ProjectBlob

FORMATS = ("sklearn", "onnx", "xgboost", "lightgbm", "catboost", "torchscript", "noop")
MAX_META_BYTES = 256 * 1024


def read_meta(model_dir: Path) -> dict[str, Any]:
    """The model directory's meta.json, checked: a known format, and its file present in the dir."""
    path = model_dir / "meta.json"
    # The directory was written by a workload: a link could point Atoll (which may be root) at a
    # file the workload may not read. Only plain files count.
    if model_dir.is_symlink() or path.is_symlink():
        raise Invalid("the model directory and meta.json must not be symbolic links", field="meta")
    if not path.is_file() or path.stat().st_size > MAX_META_BYTES:
        raise Invalid("the model directory has no meta.json (or it is over 256 KiB)", field="meta")
    try:
        with _open_plain(path) as f:
            meta = json.loads(f.read(MAX_META_BYTES + 1).decode())
    except (ValueError, UnicodeDecodeError) as e:
        raise Invalid(f"meta.json is not valid JSON: {e}", field="meta") from e
    if not isinstance(meta, dict):
        raise Invalid("meta.json must hold an object", field="meta")
    check_resource_name(meta.get("name", ""), "meta.name")
    if meta.get("format") not in FORMATS:
        raise Invalid(f"meta.format must be one of {', '.join(FORMATS)}", field="meta.format")
    file = meta.get("file")
    if meta["format"] != "noop":
        if (
            not isinstance(file, str)
            or "/" in file
            or file.startswith(".")
            or (model_dir / file).is_symlink()
            or not (model_dir / file).is_file()
        ):
            raise Invalid(
                "meta.file must name the model file (a plain file, not a link) in the model directory",
                field="meta.file",
            )
    for key in ("inputs", "outputs"):
        if not isinstance(meta.get(key, []), list):
            raise Invalid(f"meta.{key} must be a list of tensors", field=f"meta.{key}")
    if not isinstance(meta.get("libraries", {}), dict):
        raise Invalid("meta.libraries must map package names to versions", field="meta.libraries")
    return meta


def _open_plain(path: Path) -> BinaryIO:
    """Open a file a workload wrote, refusing a symbolic link in its place (O_NOFOLLOW: checked
    by the kernel at open, so it cannot be swapped in after a check)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as e:
        raise Invalid(
            f"cannot read {path.name} of the model (a link, or gone): {e.strerror}", field="meta"
        ) from e
    return os.fdopen(fd, "rb")


def register(
    db: Session, blobs: BlobStore, project_id: str, model_dir: Path, *, created_by: str | None, source: str
) -> Model:
    """Add the model in ``model_dir`` as the next version of its name in the project."""
    meta = read_meta(model_dir)
    files: dict[str, str] = {}
    size = 0
    if meta["format"] != "noop":
        with _open_plain(model_dir / meta["file"]) as f:
            digest, n = blobs.put_stream(iter(lambda: f.read(1 << 20), b""))
        files[meta["file"]] = digest
        size += n
        if db.get(Blob, digest) is None:
            db.add(Blob(sha256=digest, size=n))
        if db.get(ProjectBlob, (project_id, digest)) is None:
            db.add(ProjectBlob(project_id=project_id, sha256=digest))
    name = meta["name"]
    latest = db.scalar(
        select(func.max(Model.version)).where(Model.project_id == project_id, Model.name == name)
    )
    kept = {k: v for k, v in meta.items() if k not in ("name", "description", "version", "size")}
    model = Model(
        project_id=project_id,
        name=name,
        version=(latest or 0) + 1,
        description=str(meta.get("description", ""))[:256],
        format=meta["format"],
        meta=kept,
        files=files,
        size=size,
        # Who saved it (Atoll knows: "job job-…", "notebook") and from what (the SDK's guess).
        source=(f"{source}: {meta['source']}" if meta.get("source") else source)[:256],
        created_by=created_by,
    )
    db.add(model)
    db.flush()
    return model


def model_meta(model: Model) -> dict[str, Any]:
    """meta.json as a model server reads it: the stored meta plus name, version and description."""
    return {
        **model.meta,
        "name": model.name,
        "version": model.version,
        "description": model.description,
        "size": model.size,
    }


def materialize(blobs: BlobStore, model: Model, dest: Path) -> Path:
    """Write the model's directory (files + meta.json) at ``dest``, once; returns ``dest``."""
    if (dest / "meta.json").is_file():
        return dest
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for file, digest in model.files.items():
        shutil.copyfile(blobs.path(digest), tmp / file)
    (tmp / "meta.json").write_text(json.dumps(model_meta(model), indent=1))
    for p in (tmp, *tmp.iterdir()):
        p.chmod(0o755 if p.is_dir() else 0o644)
    try:
        os.replace(tmp, dest)
    except OSError:  # written meanwhile by someone else
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def remove_materialized(projects_root: Path, model: Model) -> None:
    """Remove a deleted version from the project's models dir (what ``atoll.models.load`` reads)."""
    shutil.rmtree(
        projects_root / model.project_id / "models" / model.name / str(model.version), ignore_errors=True
    )


# --- reading, by callers with a role -----------------------------------------------------------


def list_models(db: Session, p: Principal, project_id: str, name: str | None = None) -> list[Model]:
    project = tenancy.get_project(db, p, project_id)
    q = select(Model).where(Model.project_id == project.id)
    if name:
        q = q.where(Model.name == name)
    return list(db.scalars(q.order_by(Model.name, Model.version.desc())))


def find(db: Session, project: Project, ref: str) -> Model:
    """A model by id (``mdl-…``), by name (its latest version) or by ``name:version``."""
    if ref.startswith("mdl-"):
        m = db.get(Model, ref)
        if m is None or m.project_id != project.id:
            raise NotFound(f"model {ref!r} not found in project {project.id!r}")
        return m
    name, _, version = ref.partition(":")
    q = select(Model).where(Model.project_id == project.id, Model.name == name)
    if version:
        if not version.isdigit():
            raise Invalid(f"model version must be a number (got {version!r})", field="model")
        q = q.where(Model.version == int(version))
    m = db.scalars(q.order_by(Model.version.desc()).limit(1)).first()
    if m is None:
        raise NotFound(f"model {ref!r} not found in project {project.id!r}")
    return m


def get_model(db: Session, p: Principal, project_id: str, ref: str) -> Model:
    return find(db, tenancy.get_project(db, p, project_id), ref)


def delete_model(db: Session, p: Principal, project_id: str, ref: str) -> None:
    """Delete one version; refused while a node serves it."""
    project = tenancy.get_project(db, p, project_id, Action.PROJECT_USE)
    m = find(db, project, ref)
    for node in db.scalars(select(Node).where(Node.project_id == project.id)):
        if m.id in node.spec.get("models", []):
            raise Conflict(f"node {node.name!r} serves model {m.name}:{m.version}: delete the node first")
    db.delete(m)
