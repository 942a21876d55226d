"""Saved models (spec §8.1): named, versioned, with their files kept as blobs.

A notebook or job saves a model with ``atoll.models.save(obj, name)``: the SDK writes a model
directory (``meta.json`` + the model file, see ``atoll.models``) into the project's outbox and
Atoll registers it here as the next version of that name. Nodes pin one version; ``load(name)``
reads the latest from the project's models directory, which Atoll keeps materialized.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from atoll.domain import tenancy
from atoll.domain.access import Action, Principal
from atoll.domain.validation import check_resource_name
from atoll.errors import Conflict, Invalid, NotFound
from atoll.storage.blobs import BlobStore
from atoll.storage.layout import DataLayout
from atoll.storage.safepath import Tree, plain_file
from atoll.store.tables import Blob, Model, Node, Project, ProjectBlob

FORMATS = ("sklearn", "onnx", "xgboost", "lightgbm", "catboost", "torchscript", "noop")
MAX_META_BYTES = 256 * 1024


def read_meta(model_dir: Tree) -> dict[str, Any]:
    """The model directory's meta.json, checked: a known format, and its file present in the dir.

    The directory was written by a workload, so it is read only through ``model_dir`` (the
    safe-path module): no link is followed, only plain files count."""
    try:
        with model_dir.open_file("meta.json") as f:
            raw = f.read(MAX_META_BYTES + 1)
    except OSError as e:
        raise Invalid("the model directory has no meta.json (a plain file, not a link)", field="meta") from e
    if len(raw) > MAX_META_BYTES:
        raise Invalid("meta.json is over 256 KiB", field="meta")
    try:
        meta = json.loads(raw.decode())
    except (ValueError, UnicodeDecodeError) as e:
        raise Invalid(f"meta.json is not valid JSON: {e}", field="meta") from e
    if not isinstance(meta, dict):
        raise Invalid("meta.json must hold an object", field="meta")
    check_resource_name(meta.get("name", ""), "meta.name")
    if meta.get("format") not in FORMATS:
        raise Invalid(f"meta.format must be one of {', '.join(FORMATS)}", field="meta.format")
    file = meta.get("file")
    if meta["format"] != "noop":
        ok = isinstance(file, str) and "/" not in file and not file.startswith(".") and file != ""
        if ok:
            try:
                ok = plain_file(model_dir.lstat(str(file)), model_dir.owner)
            except OSError:
                ok = False
        if not ok:
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


def register(
    db: Session, blobs: BlobStore, project_id: str, model_dir: Tree, *, created_by: str | None, source: str
) -> Model:
    """Add the model in ``model_dir`` (a workload's directory) as the next version of its name."""
    meta = read_meta(model_dir)
    files: dict[str, str] = {}
    size = 0
    if meta["format"] != "noop":
        try:
            with model_dir.open_file(meta["file"]) as f:
                digest, n = blobs.put_stream(iter(lambda: f.read(1 << 20), b""))
        except OSError as e:
            raise Invalid(f"cannot read the model file (a link, or gone): {e.strerror}", field="meta") from e
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


def materialize(blobs: BlobStore, model: Model, dest: Path, group: int | None = None) -> Path:
    """Write the model's directory (files + meta.json) at ``dest``, once; returns ``dest``.

    Atoll's, read-only; with ``group`` (the project's workloads' gid) readable by that group and
    nobody else, otherwise by Atoll's own user only (workloads then run as Atoll's user)."""
    if (dest / "meta.json").is_file():
        return dest
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for file, digest in model.files.items():
        shutil.copyfile(blobs.path(digest), tmp / file)
    (tmp / "meta.json").write_text(json.dumps(model_meta(model), indent=1))
    for p in (tmp, *tmp.iterdir()):
        if group is not None:
            os.chown(p, -1, group)
        p.chmod((0o750 if p.is_dir() else 0o640) if group is not None else (0o700 if p.is_dir() else 0o600))
    try:
        os.replace(tmp, dest)
    except OSError:  # written meanwhile by someone else
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def remove_materialized(layout: DataLayout, model: Model) -> None:
    """Remove a deleted version from the project's models dir (what ``atoll.models.load`` reads)."""
    with contextlib.suppress(OSError), Tree(layout.models(model.project_id)) as models:
        models.remove_all(f"{model.name}/{model.version}")


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
