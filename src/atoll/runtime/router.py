"""One Runtime over the runtimes a server has (runtime/registry.py builds them): a Workload with an
image runs on the runtime that runs images (Docker), every other one on the default runtime (the
local one, or the one ATOLL_RUNTIME names).

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
    """A workload names an image, and this server runs no runtime for images (Docker)."""


class RuntimeRouter:
    def __init__(self, local: LocalRuntime, *others: Runtime | None, default: str = "local") -> None:
        # Every runtime this server can reach, by the name recorded on workload rows.
        self.by_name: dict[str, Runtime] = {r.name: r for r in (local, *others) if r is not None}
        if default not in self.by_name:
            raise ValueError(f"no runtime named {default!r} was built (known: {', '.join(self.by_name)})")
        self._local = local  # its warm pools serve only when it is the default
        self.default: Runtime = self.by_name[default]
        self.name = self.default.name
        self.images = next((r for r in self.by_name.values() if r.runs_images), None)
        self.runs_images = self.images is not None
        self.uses_project_netns = self.default.uses_project_netns
        # The runtimes that start workloads here: asked in turn for a workload known by id only.
        self._starting = [self.default, *([self.images] if self.images not in (None, self.default) else [])]
        self._placed: dict[str, Runtime] = {}  # workload id -> its runtime, where not the default

    def runtime_for(self, w: Workload) -> Runtime:
        """Where a new workload runs: the runtime for images when it has one, else the default."""
        return self.for_image(w.image)

    def for_image(self, image: str | None) -> Runtime:
        """The runtime for a workload with this image (None: without one)."""
        if not image:
            return self.default
        if self.images is None:
            raise NoDocker(
                f"image {image!r}: this server runs no Docker runtime (set ATOLL_DOCKER_HOST, "
                "e.g. unix:///var/run/docker.sock)"
            )
        return self.images

    def _remember(self, workload_id: str, rt: Runtime) -> None:
        if rt is not self.default:
            self._placed[workload_id] = rt

    def named(self, name: str, workload_id: str) -> Runtime:
        """The runtime a workload's row names; UnknownWorkload when this server has none of it."""
        rt = self.by_name.get(name)
        if rt is None:
            raise UnknownWorkload(workload_id)
        self._remember(workload_id, rt)
        return rt

    def _of(self, workload_id: str, *, logs: bool = False) -> Runtime:
        """The runtime that knows the workload. ``logs``: a forgotten workload's logs are still
        served from the log store the runtimes share, through the default runtime."""
        placed = self._placed.get(workload_id)
        if placed is not None:
            return placed
        if logs:
            return self.default
        for rt in self._starting:
            try:
                rt.status(workload_id)
            except UnknownWorkload:
                continue
            self._remember(workload_id, rt)
            return rt
        raise UnknownWorkload(workload_id)

    def start(self, w: Workload) -> WorkloadStatus:
        rt = self.runtime_for(w)
        st = rt.start(w)
        self._remember(w.id, rt)
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
        found: list[WorkloadStatus] = []
        for rt in self._starting:
            theirs = rt.adopt()
            for st in theirs:
                self._remember(st.id, rt)
            found += theirs
        return found

    def forget(self, workload_id: str) -> None:
        try:
            self._of(workload_id).forget(workload_id)
        finally:
            self._placed.pop(workload_id, None)

    def append_system_log(self, workload_id: str, line: str) -> None:
        self._of(workload_id).append_system_log(workload_id, line)

    def address_of(self, w: Workload, node_address: str) -> str:
        return self.runtime_for(w).address_of(w, node_address)

    def close(self) -> None:
        """At server shutdown: each runtime lets go of its connections; workloads run on."""
        for rt in self.by_name.values():
            rt.close()

    # The local runtime's warm pools (see LocalRuntime.keep_warm), so WarmPools callers find them;
    # elsewhere there are none (on Ray, workloads start on other machines).
    def keep_warm(self, key: str, python: Path, modules: Sequence[str], count: int) -> int:
        if self.default is not self._local:
            return 0
        return self._local.keep_warm(key, python, modules, count)

    def close_warm(self) -> None:
        self._local.close_warm()
