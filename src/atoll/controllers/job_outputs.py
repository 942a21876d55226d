"""What a finished job leaves: its outputs collected into blobs, its output datasets made.

Both read the job's dir, which its workload wrote as the project's user: only through the
safe-path module, never following a link, never more than a job may return.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from atoll.domain import datasets
from atoll.jobspec.archive import MAX_ENTRIES
from atoll.jobspec.config import JobConfig
from atoll.storage.blobs import BlobStore
from atoll.storage.layout import DataLayout
from atoll.storage.logs import LogStore, system_line
from atoll.storage.safepath import Tree, UnsafePath, move_dir, plain_file
from atoll.store.db import Database
from atoll.store.tables import Dataset

log = logging.getLogger("atoll.jobs")
MAX_RESULTS_BYTES = 1024**3


def _limited(f: BinaryIO, limit: int) -> Iterator[bytes]:
    """The file's bytes, stopping with TooLarge past ``limit`` (a job's processes may still be
    writing, so the size seen before reading is not a bound)."""
    n = 0
    while chunk := f.read(1 << 20):
        n += len(chunk)
        if n > limit:
            raise TooLarge
        yield chunk


class TooLarge(Exception):
    pass


class DatasetRefused(Exception):
    """An output dataset that cannot be made (not a directory any more, over its declared size)."""


class JobOutputs:
    """Collects a finished job's outputs and makes its output datasets."""

    def __init__(self, db: Database, blobs: BlobStore, logs: LogStore, layout: DataLayout) -> None:
        self.db = db
        self.blobs = blobs
        self.logs = logs
        self.layout = layout

    def _tree(self, job_id: str, run_as: tuple[int, int] | None) -> Tree:
        """The job's dir, which its workload writes: reached only through the safe-path module."""
        return Tree(self.layout.job(job_id), run_as[0] if run_as else None)

    def make_datasets(
        self,
        job_id: str,
        project_id: str,
        created_by: str | None,
        log_id: str,
        cfg: JobConfig,
        run_as: tuple[int, int] | None,
    ) -> list[dict[str, Any]]:
        """Turn each ``output-datasets`` directory of a job that succeeded into a dataset; returns
        what each became: ``{name, id, sizeBytes}`` or ``{name, error}``."""
        out: list[dict[str, Any]] = []
        with self.db.transaction() as s:
            # Made already, by a finish a restart interrupted before the job's status was saved.
            earlier = {d.name: d for d in s.scalars(select(Dataset).where(Dataset.job_id == job_id))}
        group = run_as[1] if run_as else None  # the project's jobs read it through their group
        for od in cfg.output_datasets:
            if od.name in earlier:
                d = earlier[od.name]
                out.append({"name": d.name, "id": d.id, "sizeBytes": d.size_bytes, "desc": d.description})
                continue
            ds_id = Dataset.new_id()
            try:
                # Moved only if it is still the job's own directory, reached without a link.
                with self._tree(job_id, run_as) as job_tree, Tree(self.layout.datasets) as root:
                    try:
                        moved = move_dir(job_tree, f"output-datasets/{od.var}", root, ds_id)
                    except UnsafePath as e:
                        raise DatasetRefused(f"${{{od.var}}} is not a directory any more") from e
                    with moved:
                        sealed = datasets.seal(moved, group)
                if sealed.dropped:
                    shown = ", ".join(sealed.dropped[:5])
                    line = f"dataset {od.name}: left out (not plain files): {shown}"
                    self.logs.append(log_id, "system", system_line(line))
                if sealed.size_bytes > od.size_gb * 1024**3:
                    raise DatasetRefused(
                        f"it holds {sealed.size_bytes} bytes, more than its declared size of {od.size_gb} GB"
                    )
                with self.db.transaction() as s:
                    s.add(
                        Dataset(
                            id=ds_id,
                            project_id=project_id,
                            name=od.name,
                            description=od.description[:256],
                            labels=dict(od.labels),
                            size_gb=od.size_gb,
                            size_bytes=sealed.size_bytes,
                            job_id=job_id,
                            created_by=created_by,
                        )
                    )
            except (DatasetRefused, OSError, IntegrityError) as e:
                datasets.remove_files(self.layout.datasets, ds_id)
                why = "a dataset of that name exists" if isinstance(e, IntegrityError) else str(e)
                self.logs.append(log_id, "system", system_line(f"dataset {od.name} was not created: {why}"))
                out.append({"name": od.name, "error": why})
                continue
            gb = sealed.size_bytes / 1024**3
            self.logs.append(
                log_id, "system", system_line(f"created dataset {ds_id} ({od.name}), size {gb:.2f} GB")
            )
            out.append({"name": od.name, "id": ds_id, "sizeBytes": sealed.size_bytes, "desc": od.description})
        return out

    def collect(
        self, job_id: str, cfg: JobConfig, run_as: tuple[int, int] | None
    ) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
        """Store the job's declared outputs as blobs. The job's dir is the workload's: every path
        is resolved beneath it without following a link at any component, only plain files (and
        directories of them, zipped) are read, and nothing is written there."""
        outputs: list[dict[str, Any]] = []
        errors: list[dict[str, str]] = []
        total = 0
        with self._tree(job_id, run_as) as tree:
            for out in cfg.outputs:
                rel = f"outputs/{out.var}/{Path(out.path).name}" if out.var else f"work/{out.path}"
                try:
                    st = tree.lstat(rel)
                except UnsafePath:
                    errors.append({"path": out.path, "error": "NOT_A_REGULAR_FILE"})
                    continue
                except OSError:
                    errors.append({"path": out.path, "error": "NOT_FOUND"})
                    continue
                is_dir = stat.S_ISDIR(st.st_mode)
                # Only plain files and directories: a link could point at Atoll's own files, a FIFO
                # or a device would hang or flood the collector.
                if not is_dir and not plain_file(st, tree.owner):
                    errors.append({"path": out.path, "error": "NOT_A_REGULAR_FILE"})
                    continue
                room = MAX_RESULTS_BYTES - total
                try:
                    if is_dir:  # zipped in Atoll's own temp dir, never in the job's
                        fd, tmp = tempfile.mkstemp(dir=self.blobs.root / "tmp", suffix=".zip")
                        os.close(fd)
                        try:
                            tree.zip_dir(rel, Path(tmp), max_bytes=room, max_entries=MAX_ENTRIES)
                            with open(tmp, "rb") as f:
                                sha, size = self.blobs.put_stream(_limited(f, room))
                        finally:
                            os.unlink(tmp)
                    else:
                        with tree.open_file(rel) as f:
                            sha, size = self.blobs.put_stream(_limited(f, room))
                except (TooLarge, UnsafePath) as e:
                    too_big = isinstance(e, TooLarge) or e.errno == errno.EFBIG
                    errors.append(
                        {"path": out.path, "error": "TOO_LARGE" if too_big else "NOT_A_REGULAR_FILE"}
                    )
                    continue
                except OSError:
                    errors.append({"path": out.path, "error": "NOT_FOUND"})
                    continue
                total += size
                outputs.append(
                    {"path": out.path, "var": out.var, "sha256": sha, "size": size, "isDir": is_dir}
                )
        return outputs, errors
