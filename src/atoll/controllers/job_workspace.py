"""A job's directory made ready to run: its modules and inputs placed (archives unpacked under
the shared archive rules), and the runtime-neutral Workload spec that runs its command there:
datasets and the project disk are mounts, the Python environment is named; the runtime that runs
it (processes, or with ``env.docker`` a container of the image) realizes them its own way.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from atoll.controllers.environments import EnvironmentChoice, content_key
from atoll.controllers.models import workload_env as model_env
from atoll.domain import workloads
from atoll.envs import builtins
from atoll.envs.build import Environment, EnvironmentBuilder
from atoll.envs.sdk import sdk_path
from atoll.jobspec.archive import ArchiveError, extract
from atoll.jobspec.config import JobConfig, PipOptions
from atoll.jobspec.requirements import merge_pip_options
from atoll.jobspec.variables import render_cmd
from atoll.storage.blobs import BlobStore
from atoll.storage.layout import DataLayout
from atoll.storage.logs import LogStore, system_line
from atoll.storage.safepath import Tree
from atoll.store.tables import JobFiles, StoredFile

log = logging.getLogger("atoll.jobs")
# A job's cmd runs in bash where there is one (DataSphere's shell), else in sh (a slim image).
JOB_SHELL = 'if command -v bash >/dev/null 2>&1; then exec bash -c "$1"; fi; exec sh -c "$1"'


class PrepareFailed(Exception):
    pass


def _safe_extract(archive: Path, dest: Path) -> None:
    """Unpack an input archive under the rules the client packs by (jobspec/archive.py); what
    lands in a job's dir is for the job's own user only."""
    try:
        extract(archive, dest, mode_mask=0o700)
    except ArchiveError as e:
        raise PrepareFailed(str(e)) from None


ProjectHome = Callable[[str, tuple[int, int] | None], Path]


class JobWorkspace:
    """Builds a job's directory and its workload spec."""

    def __init__(
        self,
        blobs: BlobStore,
        logs: LogStore,
        envs: EnvironmentBuilder,
        layout: DataLayout,
        root: Path,
        projects_root: Path,
        project_home: ProjectHome,
    ) -> None:
        self.blobs = blobs
        self.logs = logs
        self.envs = envs
        self.layout = layout
        self.root = root
        self.projects_root = projects_root
        self.project_home = project_home

    def _place(self, ref: StoredFile, dest: Path, inside: Path) -> None:
        if not dest.resolve().is_relative_to(inside.resolve()):
            raise PrepareFailed(f"{ref.path!r} would land outside the job's directory")
        sha = ref.sha256
        if not self.blobs.has(sha):
            raise PrepareFailed(f"the content of {ref.path} ({sha[:12]}) is gone from the store")
        if ref.is_dir:
            dest.mkdir(parents=True, exist_ok=True)
            _safe_extract(self.blobs.path(sha), dest)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.blobs.path(sha), dest)
            if ref.executable:
                dest.chmod(0o700)

    def _var_path(self, job_id: str, kind: str, var: str, path: str) -> Path:
        return self.layout.job(job_id) / kind / var / Path(path).name

    def _layered(
        self,
        own: Environment,
        version: str,
        project_env: EnvironmentChoice,
        base: Path,
        run_as: tuple[int, int] | None,
        say: Callable[[str], None],
    ) -> Environment:
        """The job's environment over the project's (issue 17 item 7): what env.python names wins,
        the project's environment supplies the rest (pandas and the like), as %pip does in a
        notebook. Only on the same Python; else the job's own alone, and the log says why."""
        if ".".join(version.split(".")[:2]) != project_env.python_version:
            say(
                f"env.python is Python {version}, the project's environment ({project_env.name}) "
                f"{project_env.python_version}: the job runs in its own environment alone"
            )
            return own
        if self.envs.lookup(content_key(project_env.python_version, list(project_env.resolved))) is None:
            say(f"waiting for the {project_env.name} environment to be built (once per machine)")
        under = project_env.realize(self.envs)
        say(f"layered on the project's environment: {project_env.name}")
        return self.envs.overlay(own, base / "python", run_as, under=under)

    def materialize(
        self,
        workload_id: str,
        job_id: str,
        project_id: str,
        files: JobFiles,
        cfg: JobConfig,
        *,
        run_as: tuple[int, int] | None = None,
        project_env: EnvironmentChoice | None = None,
    ) -> tuple[workloads.WorkloadSpec, JobConfig]:
        base = self.layout.job(job_id)
        with Tree(self.layout.jobs) as jobs:
            jobs.remove_all(job_id)  # a retry after a restart starts clean
        work = base / "work"
        work.mkdir(parents=True)

        def say(text: str) -> None:
            self.logs.append(workload_id, "system", system_line(text))

        say(f"preparing job {job_id}")
        for m in files.modules:
            self._place(m, work / m.path, work)
        paths: dict[str, str] = {}
        for ref in files.inputs:
            if ref.var:
                dest = self._var_path(job_id, "inputs", ref.var, ref.path)
                paths[ref.var] = str(dest)
            else:
                dest = work / ref.path
            self._place(ref, dest, base)
        for out in cfg.outputs:
            dest = self._var_path(job_id, "outputs", out.var, out.path) if out.var else work / out.path
            dest.parent.mkdir(parents=True, exist_ok=True)
            if out.var:
                paths[out.var] = str(dest)
        mounts: list[workloads.MountSpec] = []
        for od in cfg.output_datasets:  # filled by the job, made datasets when it succeeds
            dest = base / "output-datasets" / od.var
            dest.mkdir(parents=True)
            paths[od.var] = str(dest)
        for ds in cfg.datasets:  # read-only: sealed, owned by Atoll
            source = self.layout.datasets / ds.id
            if not source.is_dir():
                raise PrepareFailed(f"the files of dataset {ds.id} are gone")
            mounts.append(workloads.MountSpec(source=str(source), target=f"datasets/{ds.id}", read_only=True))
            paths[ds.name] = str(base / "datasets" / ds.id)
        env: dict[str, str] = dict(files.env_vars)
        python = files.python
        python_env: workloads.PythonEnvSpec | None = None
        if python:
            n = len(python.requirements)
            say(f"building the Python {python.version} environment ({n} requirements)")
            pip = cfg.env.python.pip if cfg.env.python else None
            if python.pip:  # options from the requirements file, merged with the config's
                p = python.pip
                sent = PipOptions(
                    index_url=p.index_url,
                    extra_index_urls=tuple(p.extra_index_urls),
                    trusted_hosts=tuple(p.trusted_hosts),
                    no_deps=p.no_deps,
                )
                pip = merge_pip_options(pip, sent)
            environment = self.envs.build(python.version, python.requirements, pip)
            say(f"environment ready: {environment.key[:12]}")
            if project_env is not None and cfg.env.image is None:
                environment = self._layered(environment, python.version, project_env, base, run_as, say)
            built = environment.python_env()
            python_env = workloads.PythonEnvSpec(prefix=str(built.prefix), venv=built.venv)
        elif cfg.env.image is None:
            # No env.python: the project's environment (its setting, else the default built-in
            # one), as its notebooks have it. A container's image brings its own Python.
            if project_env is None:
                built = builtins.DEFAULT.build(self.envs).python_env()
                name = builtins.DEFAULT.name
            else:
                if (
                    self.envs.lookup(content_key(project_env.python_version, list(project_env.resolved)))
                    is None
                ):
                    say(f"waiting for the {project_env.name} environment to be built (once per machine)")
                built = project_env.realize(self.envs).python_env()
                name = project_env.name
            python_env = workloads.PythonEnvSpec(prefix=str(built.prefix), venv=built.venv)
            say(f"environment: {name}")
        env["JOB_PROGRESS_FILENAME"] = str(base / "progress.json")
        # atoll.models.save/load, where the workload sees Atoll's files (the job's own PYTHONPATH,
        # if any, comes first).
        host_env = model_env(self.projects_root, sdk_path(self.root.parent), project_id, job_id, run_as)
        host_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (env.get("PYTHONPATH"), host_env["PYTHONPATH"]) if p
        )
        home: str | None = None
        if cfg.attach_project_disk:
            mounts.append(
                workloads.MountSpec(source=str(self.project_home(project_id, run_as)), target="project-home")
            )
            home = str(base / "project-home")
            env["DS_PROJECT_HOME"] = home
        if run_as is not None:
            # The job's own dir belongs to the project's user; Atoll's other files stay unreadable.
            with Tree(base) as tree:
                tree.chown_all(*run_as)
                os.fchmod(tree.fd, 0o700)
        cmd = render_cmd(cfg, paths, project_home=home)
        storage = cfg.working_storage.size_gb if cfg.working_storage else 0
        if storage:
            say(f"working storage: {storage} GB reserved on the machine")
        # The job's dir is the workload's, seen at its own path wherever it runs (a container binds
        # it there), so inputs, outputs and the progress file are where the command expects them.
        spec = workloads.WorkloadSpec(
            command=["sh", "-c", JOB_SHELL, "sh", cmd],
            workdir=base,
            cwd="work",
            env=env,
            host_env=host_env,
            mounts=mounts,
            python=python_env,
            ports=[],
            image=cfg.env.image,  # env.docker (spec §5.4): an image on the runtime's daemon
            storage_gb=storage,
        )
        return spec, cfg
