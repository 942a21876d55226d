"""Datasets (spec §4.6, §5.2): read-only data of a project, made by jobs.

A job's ``output-datasets`` entry names a directory (``${var}``) the job fills; when the job
succeeds, Atoll moves that directory into ``<data>/datasets/<id>``, makes it read-only and records
it here. Later jobs mount it with ``datasets:`` (read-only, at ``${var}``). A dataset's name is
unique in its project; its declared size is the most it may hold.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from atoll.domain import tenancy
from atoll.domain.access import Action, Principal
from atoll.domain.errors import Conflict, Invalid, NotFound
from atoll.domain.validation import check_resource_name
from atoll.store.models import Dataset, Job

_ID_RE = re.compile(r"^ds[0-9a-f]{18}$")


def datasets_query(db: Session, p: Principal, project_id: str) -> Select[Dataset]:
    """The project's datasets (to page through)."""
    project = tenancy.get_project(db, p, project_id, Action.PROJECT_VIEW)
    return select(Dataset).where(Dataset.project_id == project.id)


def get_dataset(
    db: Session, p: Principal, project_id: str, ref: str, action: Action = Action.PROJECT_VIEW
) -> Dataset:
    """A dataset of the project by id or by name."""
    project = tenancy.get_project(db, p, project_id, action)
    column = Dataset.id if _ID_RE.match(ref) else Dataset.name
    ds = db.scalar(select(Dataset).where(Dataset.project_id == project.id, column == ref))
    if ds is None:
        raise NotFound(f"dataset {ref!r} not found in the project")
    return ds


def delete_dataset(db: Session, p: Principal, project_id: str, ref: str) -> str:
    """Delete a dataset's record (refused while a job that mounts it has not ended); returns its
    id, whose files the caller removes (``remove_files``) once the deletion is committed."""
    from atoll.domain.jobs.lifecycle import ACTIVE

    ds = get_dataset(db, p, project_id, ref, Action.PROJECT_USE)
    for job in db.scalars(select(Job).where(Job.project_id == ds.project_id, Job.status.in_(ACTIVE))):
        if any(m.get("id") == ds.id for m in job.config.get("datasets", [])):
            raise Conflict(f"dataset {ds.name!r} is mounted by job {job.id}, which has not ended")
    db.delete(ds)
    db.flush()
    return ds.id


def remove_files(root: Path, dataset_id: str) -> None:
    path = root / dataset_id
    if path.exists():
        for dirpath, _dirnames, _files in os.walk(path):
            os.chmod(dirpath, 0o700)  # read-only dirs: their entries could not be removed
        shutil.rmtree(path, ignore_errors=True)


def check_names_free(db: Session, project_id: str, names: list[str]) -> None:
    """Output datasets must not take a name the project already has (checked when a job is made)."""
    taken = set(
        db.scalars(select(Dataset.name).where(Dataset.project_id == project_id, Dataset.name.in_(names)))
    )
    for i, name in enumerate(names):
        check_resource_name(name, f"output-datasets[{i}].name")
        if name in taken:
            raise Invalid(
                f"output-datasets[{i}].name: the project already has a dataset named {name!r}",
                field=f"output-datasets[{i}].name",
            )


def resolve_mounts(db: Session, project_id: str, refs: list[str]) -> list[Dataset]:
    """The datasets a job's ``datasets:`` names (by id), each of this project."""
    out: list[Dataset] = []
    for i, ref in enumerate(refs):
        ds = db.get(Dataset, ref) if _ID_RE.match(ref) else None
        if ds is None or ds.project_id != project_id:
            raise Invalid(f"datasets[{i}]: no dataset {ref!r} in this project", field=f"datasets[{i}]")
        out.append(ds)
    return out


@dataclass
class Sealed:
    """A dataset directory made read-only and measured."""

    size_bytes: int
    dropped: list[str]  # entries that were neither files nor directories (links, FIFOs...)


def seal(path: Path, group: int | None) -> Sealed:
    """Make the tree at ``path`` (written by a workload) a dataset: only plain files and dirs are
    kept (links and special files are removed, never followed); everything becomes owned by Atoll
    and read-only: readable by ``group`` (the project's workloads' gid) and nobody else."""
    size = 0
    dropped: list[str] = []
    owner = None if group is None else (os.getuid(), group)
    for dirpath, dirnames, filenames in os.walk(path):  # does not follow links
        for name in dirnames + filenames:
            entry = Path(dirpath) / name
            st = entry.lstat()
            if stat.S_ISDIR(st.st_mode):
                continue
            if not stat.S_ISREG(st.st_mode):
                dropped.append(str(entry.relative_to(path)))
                entry.unlink()
                continue
            size += st.st_size
            if owner is not None:
                os.chown(entry, *owner, follow_symlinks=False)
            entry.chmod(0o440)
        dirnames[:] = [d for d in dirnames if (Path(dirpath) / d).is_dir()]
    for dirpath, _dirnames, _files in os.walk(path, topdown=False):
        if owner is not None:
            os.chown(dirpath, *owner, follow_symlinks=False)
        os.chmod(dirpath, 0o550)  # noqa: S103 - group: the project's workloads read it
    return Sealed(size, dropped)
