"""Notebooks run by API (spec §4.1, ``projects/{id}:execute``): each run is a workload that
executes the notebook with its inputs as variables and writes the named outputs; the notebook
controller ticks this beside its servers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from atoll.domain.workloads import WorkloadSpec, run_identity, submit
from atoll.envs.build import Environment
from atoll.runtime.base import DEFAULT_PATH
from atoll.states import (
    WORKLOAD_FINISHED,
    Desired,
    NotebookRunStatus,
    WorkloadPhase,
)
from atoll.storage.layout import DataLayout
from atoll.storage.safepath import Tree, plain_file
from atoll.store.db import Database
from atoll.store.tables import NotebookRun, Project, WorkloadRow, utcnow

MAX_RUN_OUTPUTS_BYTES = 16 * 1024**2  # a run's output variables, as JSON
Background = Callable[[str, Callable[[str], None], Callable[[str, str], None]], None]
ProjectEnvironment = Callable[[str, tuple[int, int] | None], tuple[Environment, Path, Environment]]


class NotebookRuns:
    """Prepares, starts and collects the project's notebook runs."""

    def __init__(
        self,
        db: Database,
        layout: DataLayout,
        uid_base: int,
        background: Background,
        environment: ProjectEnvironment,
        stderr_tail: Callable[[str], str],
        notify: Callable[[str], None],
    ) -> None:
        self.db = db
        self.layout = layout
        self.uid_base = uid_base
        self._background = background  # (key, prepare, fail): prepare off the loop's thread
        self._environment = environment  # the project's notebook environment and home
        self._stderr_tail = stderr_tail
        self.notify = notify

    def notebook_exists(self, project_id: str, path: str) -> bool:
        """Whether ``path`` is a notebook file inside the project's storage (links may not leave it)."""
        try:
            with Tree(self.layout.project_home(project_id)) as home:
                return plain_file(home.lstat(path), None)
        except (OSError, ValueError):
            return False

    def tick(self, s: Session) -> None:
        """Prepare pending runs (in the background), collect the finished ones."""
        for run in s.scalars(
            select(NotebookRun).where(
                NotebookRun.status.in_((NotebookRunStatus.PENDING, NotebookRunStatus.RUNNING))
            )
        ):
            if run.status == NotebookRunStatus.PENDING:
                self._background(run.id, self._prepare_run, self._run_failed)
                continue
            wl = s.get(WorkloadRow, run.workload_id) if run.workload_id else None
            if wl is None:
                self._run_done(run, NotebookRunStatus.FAILED, error="its workload is gone")
            elif wl.state in WORKLOAD_FINISHED:
                self._collect(run, wl)

    def _run_done(self, run: NotebookRun, status: str, error: str = "") -> None:
        run.status = status
        run.error = error
        run.finished_at = utcnow()

    def _collect(self, run: NotebookRun, wl: WorkloadRow) -> None:
        if wl.state == WorkloadPhase.EXITED and wl.exit_code == 0:
            try:  # the run's dir is the workload's: read without following a link
                with Tree(self.layout.run(run.project_id, run.id)) as run_dir:
                    raw = run_dir.read_bytes("outputs.json", MAX_RUN_OUTPUTS_BYTES + 1)
                if len(raw) > MAX_RUN_OUTPUTS_BYTES:
                    raise ValueError("over 16 MB")
                values = json.loads(raw)["values"]
            except (OSError, ValueError, KeyError) as e:
                self._run_done(run, NotebookRunStatus.FAILED, error=f"the run left no readable outputs: {e}")
                return
            run.output_variables = values
            self._run_done(run, NotebookRunStatus.DONE)
            return
        reason = wl.stop_reason if wl.desired == Desired.STOP else ""
        self._run_done(
            run,
            NotebookRunStatus.FAILED,
            error=reason or self._stderr_tail(wl.id) or f"exit code {wl.exit_code}",
        )

    def _run_failed(self, run_id: str, reason: str) -> None:
        with self.db.transaction() as s:
            run = s.get(NotebookRun, run_id)
            if run is not None and run.status == NotebookRunStatus.PENDING:
                self._run_done(run, NotebookRunStatus.FAILED, error=f"could not prepare the run: {reason}")

    def _prepare_run(self, run_id: str) -> None:
        with self.db.transaction() as s:
            run = s.get(NotebookRun, run_id)
            if run is None or run.status != NotebookRunStatus.PENDING:
                return
            project_id = run.project_id
            run_as = run_identity(s, project_id, self.uid_base)
        overlay, home, _base = self._environment(project_id, run_as)
        run_dir = self.layout.run(project_id, run_id)
        self.layout.passage(run_dir.parent)
        run_dir.mkdir(mode=0o700, exist_ok=True)
        runner = (Path(__file__).parents[1] / "notebooks" / "runner.py").read_bytes()
        with Tree(run_dir) as tree:
            tree.write_new("runner.py", runner)  # replaces a link planted there, never follows it
            if run_as is not None:
                tree.chown_all(*run_as)
        with self.db.transaction() as s:
            run = s.get(NotebookRun, run_id)
            project = s.get(Project, project_id)
            if run is None or run.status != NotebookRunStatus.PENDING or project is None:
                return
            env = overlay.activate({"PATH": DEFAULT_PATH})
            env.update(
                {
                    "JUPYTER_CONFIG_DIR": str(run_dir / "config"),
                    "JUPYTER_DATA_DIR": str(run_dir / "data"),
                    "JUPYTER_RUNTIME_DIR": str(run_dir / "runtime"),
                    "IPYTHONDIR": str(run_dir / "ipython"),
                    "DS_PROJECT_HOME": str(home),
                    "ATOLL_PROJECT_ID": project_id,
                    **run.input_variables,
                }
            )
            command = [
                str(overlay.python),
                str(run_dir / "runner.py"),
                str(home / run.notebook_id),
                str(run_dir / "outputs.json"),
                json.dumps(run.output_variable_names),
            ]
            wl = submit(
                s,
                project,
                kind="notebook-run",
                owner_id=run.created_by,
                configurations=[run.configuration],
                spec=WorkloadSpec(command=command, workdir=home, env=env, mounts=[], ports=[]),
            )
            run.workload_id = wl.id
            run.status = NotebookRunStatus.RUNNING
        self.notify("workloads")
