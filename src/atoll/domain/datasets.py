"""Datasets (spec §4.6, §5.2): read-only data of a project, made by jobs.

A job's ``output-datasets`` entry names a directory (``${var}``) the job fills; when the job
succeeds, Atoll moves that directory into ``<data>/datasets/<id>``, makes it read-only and records
it here. Later jobs mount it with ``datasets:`` (read-only, at ``${var}``). A dataset's name is
unique in its project; its declared size is the most it may hold.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from atoll.domain import tenancy
from atoll.domain.access import Action, Principal
from atoll.domain.validation import check_resource_name
from atoll.errors import Conflict, Invalid, NotFound
from atoll.states import JOB_ACTIVE
from atoll.storage.safepath import Entry, Tree, open_entry, plain_file
from atoll.store.tables import Dataset, Job

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

    ds = get_dataset(db, p, project_id, ref, Action.PROJECT_USE)
    for job in db.scalars(select(Job).where(Job.project_id == ds.project_id, Job.status.in_(JOB_ACTIVE))):
        if any(m.get("id") == ds.id for m in job.config.get("datasets", [])):
            raise Conflict(f"dataset {ds.name!r} is mounted by job {job.id}, which has not ended")
    db.delete(ds)
    db.flush()
    return ds.id


def remove_files(root: Path, dataset_id: str) -> None:
    """Remove a dataset's files (a half-made one may still hold what a workload planted)."""
    with Tree(root) as t, contextlib.suppress(OSError):
        t.remove_all(dataset_id)


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


def _lock_down(dfd: int, entry: Entry, owner: tuple[int, int] | None, mode: int) -> None:
    fd = open_entry(dfd, entry)  # through its descriptor: nothing swapped in is touched
    try:
        if owner is not None:
            os.fchown(fd, *owner)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def seal(tree: Tree, group: int | None) -> Sealed:
    """Make ``tree`` (a directory a workload wrote, moved out of its reach) a dataset: only plain
    files and directories are kept (links, special files and hard links to others' files are
    removed, never followed); everything becomes owned by Atoll and read-only: readable by
    ``group`` (the project's workloads' gid) and nobody else. Each entry is opened without
    following a link and changed through its descriptor."""
    size = 0
    dropped: list[str] = []
    owner = None if group is None else (os.getuid(), group)
    for entry, dfd in tree.walk():  # files first: a read-only dir's entries could not be removed
        if entry.is_dir:
            continue
        if not plain_file(entry.st, tree.owner):
            dropped.append(entry.path)
            with contextlib.suppress(OSError):
                os.unlink(entry.name, dir_fd=dfd)
            continue
        try:
            _lock_down(dfd, entry, owner, 0o440)
            size += entry.st.st_size
        except OSError:  # swapped or gone since the listing: not part of the dataset
            dropped.append(entry.path)
            with contextlib.suppress(OSError):
                os.unlink(entry.name, dir_fd=dfd)
    for entry, dfd in tree.walk():
        if entry.is_dir:
            with contextlib.suppress(OSError):
                _lock_down(dfd, entry, owner, 0o550)  # the project's workloads read it as group
    if owner is not None:
        os.fchown(tree.fd, *owner)
    os.fchmod(tree.fd, 0o550)
    return Sealed(size, dropped)
