"""The job controller: prepare (environment + working dir), run as a Workload, collect outputs.

Job status follows its Workload: PREPARING while the environment is built and while the
Workload waits in the queue (status details say why), EXECUTING while it runs, UPLOADING_OUTPUT
while outputs are stored, then SUCCESS, ERROR or CANCELLED. Slow steps (uv builds, copying
files) run in worker threads so one job never holds up the others.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shlex
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.exc import IntegrityError

from atoll.controllers.models import workload_env as model_env
from atoll.domain import datasets, workloads
from atoll.domain.jobs import lifecycle
from atoll.domain.workloads import run_identity
from atoll.envs.build import EnvironmentBuilder
from atoll.envs.sdk import sdk_path
from atoll.errors import DomainError
from atoll.jobspec.archive import MAX_ENTRIES, ArchiveError, extract
from atoll.jobspec.config import JobConfig, PipOptions
from atoll.jobspec.requirements import merge_pip_options
from atoll.jobspec.variables import render_cmd
from atoll.states import JOB_RUNNING, JOB_TERMINAL, WORKLOAD_FINISHED, Desired, JobStatus, WorkloadPhase
from atoll.storage.blobs import BlobStore
from atoll.storage.layout import DataLayout
from atoll.storage.logs import LogStore, system_line
from atoll.storage.safepath import Tree, UnsafePath, move_dir, plain_file
from atoll.store.db import Database
from atoll.store.tables import Dataset, Job, Project, WorkloadRow, new_id, utcnow

log = logging.getLogger("atoll.jobs")
BASE_PATH = "/usr/local/bin:/usr/bin:/bin"
MAX_RESULTS_BYTES = 1024**3
STORAGE_CHECK_S = 2.0  # how often a job's use of its working storage is measured
PROGRESS_TAIL_BYTES = 64 * 1024  # only the progress file's last line counts


class PrepareFailed(Exception):
    pass


class JobGone(Exception):
    """The job was cancelled or deleted while it was being prepared."""


def _safe_extract(archive: Path, dest: Path) -> None:
    """Unpack an input archive under the rules the client packs by (jobspec/archive.py); what
    lands in a job's dir is for the job's own user only."""
    try:
        extract(archive, dest, mode_mask=0o700)
    except ArchiveError as e:
        raise PrepareFailed(str(e)) from None


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
    ) -> None:
        self.uid_base = uid_base
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
        with self.db.transaction() as s:
            jobs = list(s.scalars(select(Job).where(Job.status.in_(JOB_RUNNING))))
            for job in jobs:
                if job.id in self._busy:
                    continue
                if job.workload_id is None:
                    if job.status == JobStatus.PREPARING:
                        self._busy.add(job.id)
                        later.append((self._prepare, job.id))
                    continue
                wl = s.get(WorkloadRow, job.workload_id)
                if wl is None:
                    continue
                self._read_progress(job)
                if wl.state == WorkloadPhase.QUEUED:
                    job.status_details = wl.wait_reason
                elif (
                    wl.state in (WorkloadPhase.RUNNING, WorkloadPhase.STOPPING)
                    and job.status == JobStatus.PREPARING
                ):
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
                elif (
                    wl.state == WorkloadPhase.RUNNING and wl.desired == Desired.RUN and self._storage_due(job)
                ):
                    # Measured in a worker, outside this transaction: a big tree takes a while.
                    self._busy.add(job.id)
                    later.append((self._check_storage, job.id))
                elif wl.state in WORKLOAD_FINISHED:
                    self._storage_checked.pop(job.id, None)
                    self._busy.add(job.id)
                    if job.status != JobStatus.CANCELLING:
                        job.status = JobStatus.UPLOADING_OUTPUT
                    later.append((self._finish, job.id))
        for fn, job_id in later:
            self._pool.submit(fn, job_id)
        self._cleanup_expired()

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
                snapshot = (job.id, job.project_id, dict(job.files), lifecycle.job_config(job))
                run_as = run_identity(s, job.project_id, self.uid_base)
            spec, cfg = self._materialize(workload_id, *snapshot, run_as=run_as)
            with self.db.transaction() as s:
                job = s.get(Job, job_id)
                project = s.get(Project, snapshot[1])
                if job is None or project is None or job.status != JobStatus.PREPARING:
                    return  # cancelled or deleted meanwhile
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
                    job.files = {**job.files, "systemLog": workload_id}
                    lifecycle.set_expiry(job)
        finally:
            self._busy.discard(job_id)

    def _place(self, ref: dict[str, Any], dest: Path, inside: Path) -> None:
        if not dest.resolve().is_relative_to(inside.resolve()):
            raise PrepareFailed(f"{ref['path']!r} would land outside the job's directory")
        sha = ref["sha256"]
        if not self.blobs.has(sha):
            raise PrepareFailed(f"the content of {ref['path']} ({sha[:12]}) is gone from the store")
        if ref.get("isDir"):
            dest.mkdir(parents=True, exist_ok=True)
            _safe_extract(self.blobs.path(sha), dest)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.blobs.path(sha), dest)
            if ref.get("executable"):
                dest.chmod(0o700)

    def _var_path(self, job_id: str, kind: str, var: str, path: str) -> Path:
        return self.job_dir(job_id) / kind / var / Path(path).name

    def _materialize(
        self,
        workload_id: str,
        job_id: str,
        project_id: str,
        files: dict[str, Any],
        cfg: JobConfig,
        *,
        run_as: tuple[int, int] | None = None,
    ) -> tuple[workloads.WorkloadSpec, JobConfig]:
        base = self.job_dir(job_id)
        with Tree(self.layout.jobs) as jobs:
            jobs.remove_all(job_id)  # a retry after a restart starts clean
        work = base / "work"
        work.mkdir(parents=True)

        def say(text: str) -> None:
            self.logs.append(workload_id, "system", system_line(text))

        say(f"preparing job {job_id}")
        for m in files.get("modules", []):
            self._place(m, work / m["path"], work)
        paths: dict[str, str] = {}
        for ref in files.get("inputs", []):
            if ref.get("var"):
                dest = self._var_path(job_id, "inputs", ref["var"], ref["path"])
                paths[ref["var"]] = str(dest)
            else:
                dest = work / ref["path"]
            self._place(ref, dest, base)
        for out in cfg.outputs:
            dest = self._var_path(job_id, "outputs", out.var, out.path) if out.var else work / out.path
            dest.parent.mkdir(parents=True, exist_ok=True)
            if out.var:
                paths[out.var] = str(dest)
        docker = cfg.env.docker
        mounts: list[tuple[str, ...]] = []  # (source, target under the job dir[, "ro"]): containers
        for od in cfg.output_datasets:  # filled by the job, made datasets when it succeeds
            dest = base / "output-datasets" / od.var
            dest.mkdir(parents=True)
            paths[od.var] = str(dest)
        for m in cfg.datasets:  # read-only: sealed, owned by Atoll
            dest = base / "datasets" / m.id
            dest.parent.mkdir(exist_ok=True)
            source = self.datasets_root / m.id
            if not source.is_dir():
                raise PrepareFailed(f"the files of dataset {m.id} are gone")
            if docker is None:
                dest.symlink_to(source)
            else:
                dest.mkdir()
                mounts.append((str(source), f"datasets/{m.id}", "ro"))
            paths[m.name] = str(dest)
        env: dict[str, str] = {"PATH": BASE_PATH, **files.get("envVars", {})}
        python = files.get("python")
        site: Path | None = None
        if python:
            n = len(python["requirements"])
            say(f"building the Python {python['version']} environment ({n} requirements)")
            pip = cfg.env.python.pip if cfg.env.python else None
            if python.get("pip"):  # options from the requirements file, merged with the config's
                p = python["pip"]
                sent = PipOptions(
                    index_url=p.get("index_url"),
                    extra_index_urls=tuple(p.get("extra_index_urls", ())),
                    trusted_hosts=tuple(p.get("trusted_hosts", ())),
                    no_deps=bool(p.get("no_deps", False)),
                )
                pip = merge_pip_options(pip, sent)
            environment = self.envs.build(python["version"], python["requirements"], pip)
            env = environment.activate(env)
            say(f"environment ready: {environment.key[:12]}")
            if docker is not None:
                # In a container the image's python3 runs; the environment's packages are mounted
                # read-only beside the job and put on its path.
                (base / ".python-env").mkdir()
                mounts.append((str(environment.path), ".python-env", "ro"))
                found = sorted(environment.path.glob("lib/python*/site-packages"))
                if found:
                    site = base / ".python-env" / found[0].relative_to(environment.path)
        env["JOB_PROGRESS_FILENAME"] = str(base / "progress.json")
        # atoll.models.save/load (the job's own PYTHONPATH, if any, comes first)
        sdk_env = model_env(self.projects_root, sdk_path(self.root.parent), project_id, job_id, run_as)
        sdk_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (env.get("PYTHONPATH"), sdk_env["PYTHONPATH"]) if p
        )
        env.update(sdk_env)
        home = str(self.project_home(project_id, run_as)) if cfg.attach_project_disk else None
        if home and docker is not None:
            (base / "project-home").mkdir()
            mounts.append((home, "project-home"))
            home = str(base / "project-home")
        if run_as is not None:
            # The job's own dir belongs to the project's user; Atoll's other files stay unreadable.
            with Tree(base) as tree:
                tree.chown_all(*run_as)
                os.fchmod(tree.fd, 0o700)
        if home:
            env["DS_PROJECT_HOME"] = home
        cmd = render_cmd(cfg, paths, project_home=home)
        storage = cfg.working_storage.size_gb if cfg.working_storage else 0
        if storage:
            say(f"working storage: {storage} GB reserved on the machine")
        if docker is not None:
            # env.docker (spec §5.4): the command runs in a container of the image, which must be
            # on the Docker daemon already (no registry pulls here). The job's dir is bind-mounted
            # at its own path, so inputs, outputs and the progress file are where the command
            # expects them; the project disk, datasets and the Python environment are mounted
            # under it; atoll.models is not available in containers.
            image = docker if isinstance(docker, str) else docker.image
            say(f"running in a container of image {image}")
            for name in ("PATH", "VIRTUAL_ENV", "PYTHONPATH"):
                env.pop(name, None)  # the image's own
            if site is not None:
                env["PYTHONPATH"] = str(site)
                version = site.parent.name.removeprefix("python")
                say(f"its packages are on PYTHONPATH: the image's python3 must be {version}")
            spec = workloads.WorkloadSpec(
                command=["sh", "-c", f"cd {shlex.quote(str(work))} && {cmd}"],
                workdir=base,
                env={k: v for k, v in env.items() if not k.startswith("ATOLL_MODEL")},
                mounts=mounts,
                ports=[],
                image=image,
                storage_gb=storage,
            )
            return spec, cfg
        spec = workloads.WorkloadSpec(
            command=["bash", "-c", cmd], workdir=work, env=env, mounts=[], ports=[], storage_gb=storage
        )
        return spec, cfg

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
            outputs, errors = ([], []) if cancelled else self._collect(job_id, cfg, run_as)
            made: list[dict[str, Any]] = []
            if cfg.output_datasets and not cancelled and exit_code == 0 and not reason:
                made = self._make_datasets(job_id, project_id, created_by, log_id, cfg, run_as)
            with self.db.transaction() as s:
                job = s.get(Job, job_id)
                assert job is not None
                for o in outputs:
                    lifecycle.record_blob(s, job.project_id, o["sha256"], o["size"])
                self._read_progress(job)
                job.files = {**job.files, "outputs": outputs, "fileErrors": errors, "outputDatasets": made}
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

    def _make_datasets(
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
                with self._tree(job_id, run_as) as job_tree, Tree(self.datasets_root) as root:
                    try:
                        moved = move_dir(job_tree, f"output-datasets/{od.var}", root, ds_id)
                    except UnsafePath as e:
                        raise PrepareFailed(f"${{{od.var}}} is not a directory any more") from e
                    with moved:
                        sealed = datasets.seal(moved, group)
                if sealed.dropped:
                    shown = ", ".join(sealed.dropped[:5])
                    line = f"dataset {od.name}: left out (not plain files): {shown}"
                    self.logs.append(log_id, "system", system_line(line))
                if sealed.size_bytes > od.size_gb * 1024**3:
                    raise PrepareFailed(
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
            except (PrepareFailed, OSError, IntegrityError) as e:
                datasets.remove_files(self.datasets_root, ds_id)
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

    def _collect(
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

    # --- data TTL -----------------------------------------------------------------------

    def _cleanup_expired(self) -> None:
        with self.db.transaction() as s:
            for job in lifecycle.expired_jobs(s, datetime.now(UTC)):
                with Tree(self.layout.jobs) as jobs, contextlib.suppress(OSError):
                    jobs.remove_all(job.id)
                if job.workload_id:
                    self.logs.delete(job.workload_id)
                job.data_cleared = True
