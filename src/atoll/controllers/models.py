"""Pick up models that notebooks and jobs saved (``atoll.models.save``) and register them.

Every job and notebook server gets its own outbox, ``projects/<project>/model-outbox/<source>/``
(``<source>`` is ``job-…`` or ``nb-…``, which names who saved it), in ``ATOLL_MODEL_OUTBOX``.
The SDK writes a model directory there under a temporary name and renames it when complete;
this registers it as the next version of its name, materializes it read-only under the
project's ``models/<name>/<version>/`` (``ATOLL_MODELS_DIR``, what ``atoll.models.load`` reads),
and answers with ``<uuid>.result.json``, which ``save()`` waits for.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import time
from pathlib import Path

from sqlalchemy.orm import Session

from atoll.domain import model_registry
from atoll.errors import DomainError
from atoll.storage.blobs import BlobStore
from atoll.storage.layout import DataLayout, checked
from atoll.storage.safepath import Tree
from atoll.store.db import Database
from atoll.store.tables import Job, NotebookServer

log = logging.getLogger("atoll.models")
RESULT_TTL_S = 3600


def outbox(projects_root: Path, project_id: str, source: str, run_as: tuple[int, int] | None) -> Path:
    """The outbox of one job or notebook server, writable by the project's user."""
    layout = DataLayout(projects_root.parent)
    layout.ensure_project(project_id, run_as)
    project = layout.project(project_id)
    # model-outbox/ is the project's user's: reached, made and handed over without following a
    # link it may have planted there.
    with Tree(project) as t, t.sub("model-outbox", create=True) as boxes:
        with boxes.sub(checked(source, "outbox"), create=True) as box:
            if run_as is not None:
                os.fchown(boxes.fd, *run_as)
                os.fchown(box.fd, *run_as)
    return layout.outbox(project_id, source)


def models_dir(projects_root: Path, project_id: str, group: int | None = None) -> Path:
    """Where the project's registered models are materialized: Atoll's, read-only for the
    project's workloads (through their group), closed to everyone else."""
    d = DataLayout(projects_root.parent).models(project_id)
    d.mkdir(parents=True, exist_ok=True)
    if group is not None:
        os.chown(d, -1, group, follow_symlinks=False)
    d.chmod(0o750 if group is not None else 0o700)
    return d


def workload_env(
    projects_root: Path, sdk: Path, project_id: str, source: str, run_as: tuple[int, int] | None
) -> dict:
    """The env vars that let a job or notebook use ``atoll.models``."""
    return {
        "ATOLL_MODEL_OUTBOX": str(outbox(projects_root, project_id, source, run_as)),
        "ATOLL_MODELS_DIR": str(models_dir(projects_root, project_id, run_as[1] if run_as else None)),
        "PYTHONPATH": str(sdk),
    }


class ModelInbox:
    def __init__(self, db: Database, blobs: BlobStore, projects_root: Path) -> None:
        self.db = db
        self.blobs = blobs
        self.projects_root = projects_root
        self.layout = DataLayout(projects_root.parent)

    name = "models"

    def interval(self, base: float) -> float:
        return base

    def close(self) -> None:
        pass

    def tick(self) -> None:
        for project in self.projects_root.iterdir():  # Atoll's own dir: one entry per project
            try:
                boxes = Tree(project).sub("model-outbox")
            except OSError:
                continue  # none yet, or a link (never followed)
            with boxes:
                # Atoll handed model-outbox/ to the project's user: that is who may own what is in it.
                boxes.owner = os.fstat(boxes.fd).st_uid if os.geteuid() == 0 else None
                for name in sorted(os.listdir(boxes.fd)):
                    try:
                        box = boxes.sub(name)
                    except OSError:
                        continue  # a link would lead the reader elsewhere
                    with box:
                        self._scan(project.name, name, box)

    def _scan(self, project_id: str, source: str, box: Tree) -> None:
        for name in sorted(os.listdir(box.fd)):
            if name.startswith("."):
                continue
            try:
                st = box.lstat(name)
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):  # only what the workload wrote, never where a link points
                self._answer(box, name, {"error": "a model directory must not be a symbolic link"})
                box.unlink(name)
            elif stat.S_ISDIR(st.st_mode) and not _exists(box, f"{name}.result.json"):
                self._ingest(project_id, source, box, name)
            elif name.endswith(".result.json") and time.time() - st.st_mtime > RESULT_TTL_S:
                with contextlib.suppress(OSError):
                    box.unlink(name)

    def _answer(self, box: Tree, name: str, result: dict[str, object]) -> None:
        # The outbox is the workload's to write: created exclusively, never through a link it may
        # have planted under that name; readable by the project's user, who owns the outbox.
        owner = (box.owner, -1) if box.owner is not None else None
        with contextlib.suppress(OSError):
            box.write_new(f"{name}.result.json", json.dumps(result).encode(), mode=0o644, owner=owner)

    def _ingest(self, project_id: str, source: str, box: Tree, name: str) -> None:
        result: dict[str, object]
        try:
            with box.sub(name) as entry, self.db.transaction() as s:
                creator, label = _who(s, source)
                model = model_registry.register(
                    s, self.blobs, project_id, entry, created_by=creator, source=label
                )
                # The project's workloads' group: the outbox's, which Atoll handed to their user.
                group = os.fstat(box.fd).st_gid if box.owner is not None else None
                dest = models_dir(self.projects_root, project_id, group) / model.name / str(model.version)
                dest.parent.mkdir(parents=True, exist_ok=True)
                if group is not None:
                    os.chown(dest.parent, -1, group, follow_symlinks=False)
                dest.parent.chmod(0o750 if group is not None else 0o700)
                model_registry.materialize(self.blobs, model, dest, group)
                result = {"id": model.id, "name": model.name, "version": model.version}
            log.info("registered model %s:%s (%s) from %s", model.name, model.version, model.id, source)
        except DomainError as e:
            result = {"error": e.detail}
        except Exception as e:  # a broken model directory must not stop the others
            log.exception("could not register the model %s/%s", source, name)
            result = {"error": f"could not register the model: {e}"}
        self._answer(box, name, result)
        with contextlib.suppress(OSError):
            box.remove_all(name)


def _exists(box: Tree, name: str) -> bool:
    try:
        box.lstat(name)
    except OSError:
        return False
    return True


def _who(s: Session, source: str) -> tuple[str | None, str]:
    """Who saved a model, from the outbox's name: (user id, a label such as "job job-…")."""
    if source.startswith("job-"):
        job = s.get(Job, source)
        return (job.created_by if job else None), f"job {source}"
    if source.startswith("nb-"):
        server = s.get(NotebookServer, source)
        return (server.opened_by if server else None), "notebook"
    return None, source
