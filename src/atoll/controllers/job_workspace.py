"""A job's directory made ready to run: its modules and inputs placed (archives unpacked under
the shared archive rules), its datasets, project disk and Python environment made reachable, and
the Workload spec that runs its command there (as a process or, with ``env.docker``, in a
container of the image).
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from atoll.controllers.models import workload_env as model_env
from atoll.domain import workloads
from atoll.envs.build import EnvironmentBuilder
from atoll.envs.sdk import sdk_path
from atoll.jobspec.archive import ArchiveError, extract
from atoll.jobspec.config import JobConfig, PipOptions
from atoll.jobspec.requirements import merge_pip_options
from atoll.jobspec.variables import render_cmd
from atoll.storage.blobs import BlobStore
from atoll.storage.layout import DataLayout
from atoll.storage.logs import LogStore, system_line
from atoll.storage.safepath import Tree

log = logging.getLogger("atoll.jobs")
BASE_PATH = "/usr/local/bin:/usr/bin:/bin"
MAX_RESULTS_BYTES = 1024**3
STORAGE_CHECK_S = 2.0  # how often a job's use of its working storage is measured
PROGRESS_TAIL_BYTES = 64 * 1024  # only the progress file's last line counts


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
        return self.layout.job(job_id) / kind / var / Path(path).name

    def materialize(
        self,
        workload_id: str,
        job_id: str,
        project_id: str,
        files: dict[str, Any],
        cfg: JobConfig,
        *,
        run_as: tuple[int, int] | None = None,
    ) -> tuple[workloads.WorkloadSpec, JobConfig]:
        base = self.layout.job(job_id)
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
            source = self.layout.datasets / m.id
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
