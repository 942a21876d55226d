"""Where everything lives in the data dir: one object, so no code spells a tenant path by hand.

    <data>/secret.key, atoll.db*        Atoll's own (0600)
    <data>/logs/ blobs/ runtime/        Atoll's own (0700)
    <data>/jobs/<job id>/               one job's dir: the project's user owns it (0700)
    <data>/datasets/<dataset id>/       sealed datasets: Atoll's, readable by the project's group
    <data>/projects/<project id>/       Atoll's (0711): what lies inside is reached by name only
        home/                           the project disk (DS_PROJECT_HOME), the project's user's
        tmp/                            the project's /tmp, the project's user's (1700)
        model-outbox/<source>/          where a job or notebook saves models, the project's user's
        models/<name>/<version>/        registered models, Atoll's, readable by the project's group
        runs/<run id>/                  notebook runs by API
        jupyter/ notebook-env/          the notebook server's state and %pip packages
        nodes/<node id>/                node instances' working dirs

Every directory named here that a workload can write is touched by privileged code only through
``atoll.storage.safepath``; the names of those subtrees are checked ids, never a tenant's text.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from atoll.storage.safepath import Tree

_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,127}$")  # project, job, node, run, dataset and source ids


def checked(value: str, what: str = "id") -> str:
    """``value`` if it is a safe single path component of ids ([a-z0-9-]), else ValueError."""
    if not _ID.match(value):
        raise ValueError(f"invalid {what} {value!r}")
    return value


@dataclass(frozen=True)
class DataLayout:
    """The data dir's layout (see the module docstring)."""

    root: Path

    @property
    def jobs(self) -> Path:
        return self.root / "jobs"

    @property
    def projects(self) -> Path:
        return self.root / "projects"

    @property
    def datasets(self) -> Path:
        return self.root / "datasets"

    def job(self, job_id: str) -> Path:
        return self.jobs / checked(job_id, "job id")

    def dataset(self, dataset_id: str) -> Path:
        return self.datasets / checked(dataset_id, "dataset id")

    def project(self, project_id: str) -> Path:
        return self.projects / checked(project_id, "project id")

    def project_home(self, project_id: str) -> Path:
        return self.project(project_id) / "home"

    def project_tmp(self, project_id: str) -> Path:
        return self.project(project_id) / "tmp"

    def outboxes(self, project_id: str) -> Path:
        return self.project(project_id) / "model-outbox"

    def outbox(self, project_id: str, source: str) -> Path:
        return self.outboxes(project_id) / checked(source, "outbox")

    def models(self, project_id: str) -> Path:
        return self.project(project_id) / "models"

    def run(self, project_id: str, run_id: str) -> Path:
        return self.project(project_id) / "runs" / checked(run_id, "run id")

    def notebook_state(self, project_id: str) -> Path:
        return self.project(project_id) / "jupyter"

    def notebook_env(self, project_id: str) -> Path:
        return self.project(project_id) / "notebook-env"

    def node(self, project_id: str, node_id: str) -> Path:
        return self.project(project_id) / "nodes" / checked(node_id, "node id")

    def passage(self, d: Path) -> Path:
        """Make ``d`` (a dir of Atoll's between the data dir and a workload's own tree, e.g.
        ``projects/<id>/runs``) and let workloads pass through it, never list it (0711; the
        server's umask would make it 0700)."""
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(0o711)
        return d

    def ensure_project(self, project_id: str, run_as: tuple[int, int] | None) -> None:
        """Make the project's dir (Atoll's, 0711: passed through, never listed) and the trees its
        workloads own: ``home`` (the project disk) and ``tmp`` (its /tmp); idempotent, and made
        without following a link the project's user may have planted."""
        project = self.project(project_id)
        project.mkdir(mode=0o711, parents=True, exist_ok=True)
        with Tree(project) as t:
            os.fchmod(t.fd, 0o711 if run_as is not None else 0o700)
            for name in ("home", "tmp"):
                with t.sub(name, create=True) as d:
                    if run_as is not None:
                        os.fchown(d.fd, *run_as)
                    os.fchmod(d.fd, 0o700)
