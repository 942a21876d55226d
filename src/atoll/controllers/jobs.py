"""The job controller: prepare (environment + working dir), run as a Workload, collect outputs.

Job status follows its Workload: PREPARING while the environment is built and while the
Workload waits in the queue (status details say why), EXECUTING while it runs, UPLOADING_OUTPUT
while outputs are stored, then SUCCESS, ERROR or CANCELLED. Slow steps (uv builds, copying
files) run in worker threads so one job never holds up the others.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from atoll.controllers.environments import EnvironmentChoice
from atoll.controllers.job_outputs import JobOutputs
from atoll.controllers.job_workspace import JobWorkspace, PrepareFailed
from atoll.domain import environments, images, workloads
from atoll.domain.jobs import lifecycle
from atoll.domain.workloads import run_identity
from atoll.envs.build import EnvironmentBuilder
from atoll.errors import DomainError
from atoll.states import JOB_RUNNING, JOB_TERMINAL, WORKLOAD_FINISHED, Desired, JobStatus, WorkloadPhase
from atoll.storage.blobs import BlobStore
from atoll.storage.layout import DataLayout
from atoll.storage.logs import LogStore, system_line
from atoll.storage.safepath import Tree
from atoll.store.db import Database
from atoll.store.tables import Job, Project, WorkloadRow, new_id, utcnow

log = logging.getLogger("atoll.jobs")
WORKLOAD_ALIVE = (WorkloadPhase.RUNNING, WorkloadPhase.STOPPING)
STORAGE_CHECK_S = 2.0  # how often a job's use of its working storage is measured
PROGRESS_TAIL_BYTES = 64 * 1024  # only the progress file's last line counts


class JobGone(Exception):
    """The job was cancelled or deleted while it was being prepared."""


class JobController:
    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        logs: LogStore,
        envs: EnvironmentBuilder,
        root: Path,
        projects_root: Path,
        uid_base: int = 0,
        notify: Callable[[str], None] = lambda _controller: None,
        changed: Callable[[str], None] = lambda _job_id: None,
    ) -> None:
        self.uid_base = uid_base
        self.notify = notify  # wake another controller now (a prepared job's workload: "workloads")
        self.changed = changed  # a job's state or progress changed: its followers look again
        self.layout = DataLayout(root.parent)
        self.datasets_root = self.layout.datasets
        self.db = db
        self.blobs = blobs
        self.logs = logs
        self.envs = envs
        self.root = root  # one dir per job: work/, inputs/, outputs/, progress file
        self.projects_root = projects_root
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="atoll-jobs")
        self._busy: set[str] = set()
        self._storage_checked: dict[str, float] = {}  # job id -> when its working dir was measured
        self.outputs = JobOutputs(db, blobs, logs, self.layout)
        self.workspace = JobWorkspace(blobs, logs, envs, self.layout, root, projects_root, self.project_home)

    def job_dir(self, job_id: str) -> Path:
        return self.layout.job(job_id)

    def _tree(self, job_id: str, run_as: tuple[int, int] | None) -> Tree:
        """The job's dir, which its workload writes: reached only through the safe-path module."""
        return Tree(self.job_dir(job_id), run_as[0] if run_as else None)

    def project_home(self, project_id: str, run_as: tuple[int, int] | None = None) -> Path:
        """The project's persistent storage (DS_PROJECT_HOME), owned by the project's user."""
        self.layout.ensure_project(project_id, run_as)
        return self.layout.project_home(project_id)

    # --- the loop -----------------------------------------------------------------------

    name = "jobs"

    def interval(self, base: float) -> float:
        return base

    def close(self) -> None:
        pass

    def tick(self) -> None:
        # Background steps start only after this transaction commits, or they could read (and
        # later overwrite) the state this tick is still writing.
        later: list[tuple[Any, str]] = []
        moved: list[str] = []  # jobs whose state or progress this tick changed
        with self.db.transaction() as s:
            jobs = list(s.scalars(select(Job).where(Job.status.in_(JOB_RUNNING))))
            for job in jobs:
                if job.id in self._busy:
                    continue
                before = (job.status, job.status_details, job.progress)
                if self._step(s, job, later) or (job.status, job.status_details, job.progress) != before:
                    moved.append(job.id)
        for fn, job_id in later:
            self._pool.submit(fn, job_id)
        for job_id in moved:
            self.changed(job_id)
        self._cleanup_expired()

    def _step(self, s: Session, job: Job, later: list[tuple[Any, str]]) -> bool:
        """One job's part of a tick: what its workload's state means for it. True when the job
        moved in a way its attributes here do not show (the compare-and-set below)."""
        if job.workload_id is None:
            if job.status == JobStatus.PREPARING:
                self._busy.add(job.id)
                later.append((self._prepare, job.id))
            return False
        wl = s.get(WorkloadRow, job.workload_id)
        if wl is None:
            return False
        self._read_progress(job)
        if wl.state == WorkloadPhase.QUEUED:
            job.status_details = wl.wait_reason
        elif job.status == JobStatus.PREPARING and wl.state in WORKLOAD_ALIVE:
            # Compare-and-set: a cancel committed since we read the job must win.
            s.execute(
                update(Job)
                .where(Job.id == job.id, Job.status == JobStatus.PREPARING)
                .values(
                    status=JobStatus.EXECUTING,
                    status_details="",
                    started_at=wl.started_at or utcnow(),
                    actual_cloud_instance_type=wl.configuration,
                )
                .execution_options(synchronize_session=False)
            )
            return True
        elif wl.state == WorkloadPhase.RUNNING and wl.desired == Desired.RUN and self._storage_due(job):
            # Measured in a worker, outside this transaction: a big tree takes a while.
            self._busy.add(job.id)
            later.append((self._check_storage, job.id))
        elif wl.state in WORKLOAD_FINISHED:
            self._storage_checked.pop(job.id, None)
            self._busy.add(job.id)
            if job.status != JobStatus.CANCELLING:
                job.status = JobStatus.UPLOADING_OUTPUT
            later.append((self._finish, job.id))
        return False

    def _storage_due(self, job: Job) -> bool:
        """A job with working storage whose directory was last measured over STORAGE_CHECK_S ago."""
        if not (job.config.get("working_storage") or {}).get("size_gb"):
            return False
        now = time.monotonic()
        if now - self._storage_checked.get(job.id, 0.0) < STORAGE_CHECK_S:
            return False
        self._storage_checked[job.id] = now
        return True

    def _check_storage(self, job_id: str) -> None:
        """Stop a job that has written more than its working storage."""
        try:
            with self.db.session() as s:
                job = s.get(Job, job_id)
                if job is None or job.workload_id is None:
                    return
                size_gb, workload_id = int(job.config["working_storage"]["size_gb"]), job.workload_id
            with self._tree(job_id, None) as tree:
                used = tree.size()
            if used <= size_gb * 1024**3:
                return
            with self.db.transaction() as s:
                s.execute(
                    update(WorkloadRow)
                    .where(WorkloadRow.id == workload_id, WorkloadRow.desired == Desired.RUN)
                    .values(
                        desired=Desired.STOP,
                        stop_signal=9,
                        stop_grace_s=0.0,
                        stop_reason=f"working storage of {size_gb} GB exceeded ({used / 1024**3:.1f} GB "
                        "written)",
                    )
                    .execution_options(synchronize_session=False)
                )
        except Exception:
            log.exception("measuring the working storage of job %s failed", job_id)
        finally:
            self._busy.discard(job_id)

    def _read_progress(self, job: Job) -> None:
        # The job writes this file: a link, a FIFO or a huge file in its place must not make us
        # read anything else, hang, or read for long. Only its last lines matter.
        try:
            with self._tree(job.id, None) as tree, tree.open_file("progress.json") as f:
                f.seek(max(0, os.fstat(f.fileno()).st_size - PROGRESS_TAIL_BYTES))
                text = f.read(PROGRESS_TAIL_BYTES).decode(errors="replace").strip().splitlines()
        except (OSError, ValueError):
            return
        if text:
            try:
                last = json.loads(text[-1])
            except ValueError:
                return
            if isinstance(last, dict) and last != job.progress:
                job.progress = {
                    "progress": last.get("progress"),
                    "message": str(last.get("message", ""))[:500],
                }

    # --- preparing ----------------------------------------------------------------------

    def _prepare(self, job_id: str) -> None:
        workload_id = new_id("wl")
        try:
            with self.db.transaction() as s:
                job = s.get(Job, job_id)
                assert job is not None
                snapshot = (job.id, job.project_id, job.files, lifecycle.job_config(job))
                run_as = run_identity(s, job.project_id, self.uid_base)
                project = s.get(Project, job.project_id)
                row = environments.of_project(s, project) if project is not None else None
                project_env = EnvironmentChoice.of(row) if row is not None else None
            spec, cfg = self.workspace.materialize(
                workload_id, *snapshot, run_as=run_as, project_env=project_env
            )
            with self.db.transaction() as s:
                job = s.get(Job, job_id)
                project = s.get(Project, snapshot[1])
                if job is None or project is None or job.status != JobStatus.PREPARING:
                    return  # cancelled or deleted meanwhile
                if spec.image:  # env.docker naming one of the project's images runs its content id
                    built = images.runnable(s, project, spec.image)
                    if built is not None:
                        spec = spec.model_copy(update={"image": built})
                gs = cfg.graceful_shutdown
                wl = workloads.submit(
                    s,
                    project,
                    kind="job",
                    owner_id=job.id,
                    configurations=list(cfg.cloud_instance_types),
                    spec=spec,
                    stop_signal=gs.signal_number if gs else 9,
                    stop_grace_s=(gs.timeout_seconds or 15.0) if gs else 0.0,
                    workload_id=workload_id,
                )
                # Attach the workload only if the job is still waiting for one; a cancel that came
                # in meanwhile rolls the submission back with this transaction.
                attached = s.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.status == JobStatus.PREPARING, Job.workload_id.is_(None))
                    .values(workload_id=wl.id, status_details="queued")
                    .execution_options(synchronize_session=False)
                )
                if not cast(CursorResult[Any], attached).rowcount:
                    raise JobGone  # rolls back the workload submitted above
            self.notify("workloads")  # admit it now, not at the scheduler's next tick
        except JobGone:
            pass
        except Exception as e:  # whatever went wrong, the job ends with the reason, never stuck
            if not isinstance(e, DomainError | PrepareFailed | OSError):
                log.exception("preparing job %s failed", job_id)
            detail = getattr(e, "detail", None) or str(e) or type(e).__name__
            self.logs.append(workload_id, "system", system_line(f"preparing failed: {detail}"))
            with self.db.transaction() as s:
                job = s.get(Job, job_id)
                if job is not None:
                    job.status = JobStatus.ERROR
                    job.status_details = f"preparing failed: {detail}"
                    job.finished_at = utcnow()
                    job.workload_id = job.workload_id or None
                    job.files = job.files.with_(system_log=workload_id)
                    lifecycle.set_expiry(job)
        finally:
            self._busy.discard(job_id)
            self.changed(job_id)

    # --- finishing ----------------------------------------------------------------------

    def _finish(self, job_id: str) -> None:
        try:
            with self.db.session() as s:
                job = s.get(Job, job_id)
                assert job is not None and job.workload_id is not None
                wl = s.get(WorkloadRow, job.workload_id)
                assert wl is not None
                cfg = lifecycle.job_config(job)
                cancelled = job.status == JobStatus.CANCELLING
                exit_code, reason = wl.exit_code, wl.stop_reason
                project_id, created_by, log_id = job.project_id, job.created_by, job.workload_id
                run_as = run_identity(s, project_id, self.uid_base)
            outputs, errors = ([], []) if cancelled else self.outputs.collect(job_id, cfg, run_as)
            made: list[dict[str, Any]] = []
            if cfg.output_datasets and not cancelled and exit_code == 0 and not reason:
                made = self.outputs.make_datasets(job_id, project_id, created_by, log_id, cfg, run_as)
            with self.db.transaction() as s:
                job = s.get(Job, job_id)
                assert job is not None
                for o in outputs:
                    lifecycle.record_blob(s, job.project_id, o["sha256"], o["size"])
                self._read_progress(job)
                job.files = job.files.with_(outputs=outputs, file_errors=errors, output_datasets=made)
                job.return_code = exit_code
                job.finished_at = utcnow()
                job.data_size_bytes += sum(o["size"] for o in outputs)
                if cancelled:
                    job.status = JobStatus.CANCELLED
                elif exit_code == 0 and not reason:
                    job.status = JobStatus.SUCCESS
                    job.status_details = ""
                else:
                    job.status = JobStatus.ERROR
                    job.status_details = reason or f"the program exited with code {exit_code}"
                lifecycle.set_expiry(job)
        except Exception as e:
            log.exception("finishing job %s failed", job_id)
            with self.db.transaction() as s:
                job = s.get(Job, job_id)
                if job is not None and job.status not in JOB_TERMINAL:
                    job.status = JobStatus.ERROR
                    job.status_details = f"collecting the outputs failed: {e}"
                    job.finished_at = utcnow()
                    lifecycle.set_expiry(job)
        finally:
            self._busy.discard(job_id)
            self.changed(job_id)

    # --- data TTL -----------------------------------------------------------------------

    def _cleanup_expired(self) -> None:
        with self.db.transaction() as s:
            for job in lifecycle.expired_jobs(s, datetime.now(UTC)):
                with Tree(self.layout.jobs) as jobs, contextlib.suppress(OSError):
                    jobs.remove_all(job.id)
                if job.workload_id:
                    self.logs.delete(job.workload_id)
                job.data_cleared = True
