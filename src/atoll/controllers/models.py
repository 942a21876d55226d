"""Pick up models that notebooks and jobs saved (``atoll.models.save``) and register them.

Every job and notebook server gets its own outbox, ``projects/<project>/model-outbox/<source>/``
(``<source>`` is ``job-…`` or ``nb-…``, which names who saved it), in ``ATOLL_MODEL_OUTBOX``.
The SDK writes a model directory there under a temporary name and renames it when complete;
this registers it as the next version of its name, materializes it read-only under the
project's ``models/<name>/<version>/`` (``ATOLL_MODELS_DIR``, what ``atoll.models.load`` reads),
and answers with ``<uuid>.result.json``, which ``save()`` waits for.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import time
from pathlib import Path

from sqlalchemy.orm import Session

from atoll.domain import model_registry
from atoll.domain.errors import DomainError
from atoll.storage.blobs import BlobStore
from atoll.store.db import Database
from atoll.store.models import Job, NotebookServer

log = logging.getLogger("atoll.models")
RESULT_TTL_S = 3600


def outbox(projects_root: Path, project_id: str, source: str, run_as: tuple[int, int] | None) -> Path:
    """The outbox of one job or notebook server, writable by the project's user."""
    box = projects_root / project_id / "model-outbox" / source
    if box.is_symlink():  # the project's user may write in model-outbox/: never chown through a link
        box.unlink()
    box.mkdir(parents=True, exist_ok=True)
    if run_as is not None:
        os.chown(box.parent, *run_as, follow_symlinks=False)
        os.chown(box, *run_as, follow_symlinks=False)
    return box


def models_dir(projects_root: Path, project_id: str) -> Path:
    """Where the project's registered models are materialized (read-only for its workloads)."""
    d = projects_root / project_id / "models"
    d.mkdir(parents=True, exist_ok=True)
    d.chmod(0o755)
    return d


def workload_env(
    projects_root: Path, sdk: Path, project_id: str, source: str, run_as: tuple[int, int] | None
) -> dict:
    """The env vars that let a job or notebook use ``atoll.models``."""
    return {
        "ATOLL_MODEL_OUTBOX": str(outbox(projects_root, project_id, source, run_as)),
        "ATOLL_MODELS_DIR": str(models_dir(projects_root, project_id)),
        "PYTHONPATH": str(sdk),
    }


class ModelInbox:
    def __init__(self, db: Database, blobs: BlobStore, projects_root: Path) -> None:
        self.db = db
        self.blobs = blobs
        self.projects_root = projects_root

    def tick(self) -> None:
        for box in self.projects_root.glob("*/model-outbox/*"):
            if box.is_symlink() or not box.is_dir():  # a link would lead the reader elsewhere
                continue
            for entry in box.iterdir():
                if entry.name.startswith("."):
                    continue
                if entry.is_symlink():  # only what the workload wrote, never where a link points
                    self._refuse(entry, "a model directory must not be a symbolic link")
                elif entry.is_dir() and not (box / f"{entry.name}.result.json").exists():
                    self._ingest(box.parent.parent.name, box.name, entry)
                elif (
                    entry.name.endswith(".result.json") and time.time() - entry.stat().st_mtime > RESULT_TTL_S
                ):
                    entry.unlink(missing_ok=True)

    def _refuse(self, entry: Path, why: str) -> None:
        self._answer(entry, {"error": why})
        entry.unlink(missing_ok=True)

    def _answer(self, entry: Path, result: dict[str, object]) -> None:
        # The outbox is the workload's to write: create the answer exclusively, never through a
        # link it may have planted under that name.
        tmp = entry.with_name(f".{entry.name}.{secrets.token_hex(6)}.result")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(result))
        os.replace(tmp, entry.with_name(f"{entry.name}.result.json"))

    def _ingest(self, project_id: str, source: str, entry: Path) -> None:
        result: dict[str, object]
        try:
            with self.db.transaction() as s:
                creator, label = _who(s, source)
                model = model_registry.register(
                    s, self.blobs, project_id, entry, created_by=creator, source=label
                )
                dest = models_dir(self.projects_root, project_id) / model.name / str(model.version)
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.parent.chmod(0o755)
                model_registry.materialize(self.blobs, model, dest)
                result = {"id": model.id, "name": model.name, "version": model.version}
            log.info("registered model %s:%s (%s) from %s", model.name, model.version, model.id, source)
        except DomainError as e:
            result = {"error": e.detail}
        except Exception as e:  # a broken model directory must not stop the others
            log.exception("could not register the model in %s", entry)
            result = {"error": f"could not register the model: {e}"}
        self._answer(entry, result)
        shutil.rmtree(entry, ignore_errors=True)


def _who(s: Session, source: str) -> tuple[str | None, str]:
    """Who saved a model, from the outbox's name: (user id, a label such as "job job-…")."""
    if source.startswith("job-"):
        job = s.get(Job, source)
        return (job.created_by if job else None), f"job {source}"
    if source.startswith("nb-"):
        server = s.get(NotebookServer, source)
        return (server.opened_by if server else None), "notebook"
    return None, source
