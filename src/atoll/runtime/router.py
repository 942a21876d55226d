"""One Runtime over the local runtime (or, with ATOLL_RUNTIME=ray, the Ray one) and, when a Docker
daemon is configured, the Docker one: a Workload with an image runs as a container, every other
one as processes of the default runtime (local or Ray).

The workload controller records on each workload's row the runtime that started it
(``runtime_for``) and sends its later calls there (``named``): a restart with another default
runtime still finds what the old one runs. Callers without the row (a workload id only) are
served by asking the runtimes in turn.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from pathlib import Path

from atoll.runtime.base import LogChunk, Runtime, UnknownWorkload, Usage, Workload, WorkloadStatus
from atoll.runtime.local.runtime import LocalRuntime


class NoDocker(ValueError):
    """A workload names an image, and this server runs no Docker runtime."""


class RuntimeRouter:
    def __init__(
        self, local: LocalRuntime, docker: Runtime | None = None, ray: Runtime | None = None
    ) -> None:
        # Workloads without an image run on the default runtime: Ray when given, else the local one
        # (whose warm pools serve only then).
        self._local = local
        self.default: Runtime = ray if ray is not None else local
        self.name = self.default.name
        self.docker = docker
        self._docker_ids: set[str] = set()
        # Every runtime this server can reach, by the name recorded on workload rows.
        self.by_name: dict[str, Runtime] = {r.name: r for r in (local, docker, ray) if r is not None}

    def runtime_for(self, w: Workload) -> Runtime:
        """Where a new workload runs: a container runtime for an image, else the default one."""
        if not w.image:
            return self.default
        if self.docker is None:
            raise NoDocker(
                f"image {w.image!r}: this server runs no Docker runtime (set ATOLL_DOCKER_HOST, "
                "e.g. unix:///var/run/docker.sock)"
            )
        return self.docker

    def named(self, name: str, workload_id: str) -> Runtime:
        """The runtime a workload's row names; UnknownWorkload when this server has none of it."""
        rt = self.by_name.get(name)
        if rt is None:
            raise UnknownWorkload(workload_id)
        if rt is self.docker:
            self._docker_ids.add(workload_id)
        return rt

    def _of(self, workload_id: str, *, logs: bool = False) -> Runtime:
        """The runtime that knows the workload. ``logs``: a forgotten workload's logs are still
        served from the log store the runtimes share, through the default runtime."""
        if logs and workload_id not in self._docker_ids:
            return self.default
        if self.docker is None or workload_id not in self._docker_ids:
            try:
                self.default.status(workload_id)
                return self.default
            except UnknownWorkload:
                if self.docker is None:
                    raise
        self.docker.status(workload_id)  # raises UnknownWorkload when neither knows it
        self._docker_ids.add(workload_id)
        return self.docker

    def start(self, w: Workload) -> WorkloadStatus:
        rt = self.runtime_for(w)
        st = rt.start(w)
        if rt is self.docker:
            self._docker_ids.add(w.id)
        return st

    def stop(self, workload_id: str, sig: int = signal.SIGTERM, grace: float = 10.0) -> WorkloadStatus:
        return self._of(workload_id).stop(workload_id, sig, grace)

    def status(self, workload_id: str) -> WorkloadStatus:
        return self._of(workload_id).status(workload_id)

    def logs(
        self, workload_id: str, stream: str = "stdout", offset: int = 0, limit: int = 1 << 20
    ) -> LogChunk:
        return self._of(workload_id, logs=True).logs(workload_id, stream, offset, limit)

    def usage(self, workload_id: str) -> Usage:
        return self._of(workload_id).usage(workload_id)

    def adopt(self) -> list[WorkloadStatus]:
        found = list(self.default.adopt())
        if self.docker is not None:
            theirs = self.docker.adopt()
            self._docker_ids.update(st.id for st in theirs)
            found += theirs
        return found

    def forget(self, workload_id: str) -> None:
        try:
            self._of(workload_id).forget(workload_id)
        finally:
            self._docker_ids.discard(workload_id)

    def append_system_log(self, workload_id: str, line: str) -> None:
        self._of(workload_id).append_system_log(workload_id, line)

    # The local runtime's warm pools (see LocalRuntime.keep_warm), so WarmPools callers find them;
    # on Ray there are none (workloads start on other machines).
    def keep_warm(self, key: str, python: Path, modules: Sequence[str], count: int) -> int:
        if self.default is not self._local:
            return 0
        return self._local.keep_warm(key, python, modules, count)

    def close_warm(self) -> None:
        self._local.close_warm()
