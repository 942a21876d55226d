"""Fixtures for runtime tests: a LocalRuntime over a temporary state dir, cleaned up by workload id.

Every workload a test starts is forgotten at teardown, which kills what is left of it by process
group / cgroup (never by name) and removes its cgroups.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from atoll.runtime.base import Resources, Workload, WorkloadStatus
from atoll.runtime.local.limits import LimitSupport
from atoll.runtime.local.runtime import LocalRuntime
from atoll.storage.logs import LogStore

DEADLINE = 20.0


def py(code: str) -> list[str]:
    """argv running a Python snippet with the test interpreter (the workload's PATH has no venv)."""
    return [sys.executable, "-c", code]


def wait_for(predicate: Callable[[], object], timeout: float = DEADLINE, what: str = "condition") -> None:
    """Poll `predicate` until it is truthy; fail the test past the deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def wait_finished(rt: LocalRuntime, workload_id: str, timeout: float = DEADLINE) -> WorkloadStatus:
    """Poll status() until the workload is in a final state; return that status."""
    wait_for(lambda: rt.status(workload_id).state.finished, timeout, f"{workload_id} to finish")
    return rt.status(workload_id)


def read_all(rt: LocalRuntime, workload_id: str, stream: str = "stdout") -> bytes:
    """The whole stream as stored so far."""
    return rt.logs(workload_id, stream, 0, 1 << 30).data


def wait_log(rt: LocalRuntime, workload_id: str, needle: bytes, stream: str = "stdout") -> bytes:
    """Poll a log stream until `needle` appears in it; return the stream."""
    wait_for(lambda: needle in read_all(rt, workload_id, stream), what=f"{needle!r} in {stream}")
    return read_all(rt, workload_id, stream)


def pid_alive(pid: int) -> bool:
    """Whether a pid names a live (non-zombie) process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def _cleanup(rt: LocalRuntime) -> None:
    rt.close_warm()
    for d in sorted(rt.state_dir.iterdir()):
        if d.is_dir() and not d.name.startswith("."):
            rt.forget(d.name)


@pytest.fixture
def make_runtime(tmp_path: Path) -> Iterator[Callable[..., LocalRuntime]]:
    """Factory of LocalRuntimes over this test's state and log dirs (several = a server restart)."""
    made: list[LocalRuntime] = []

    def make(limits: LimitSupport | None = None) -> LocalRuntime:
        rt = LocalRuntime(tmp_path / "state", LogStore(tmp_path / "logs"), limits)
        made.append(rt)
        return rt

    yield make
    if made:
        _cleanup(made[-1])


@pytest.fixture
def rt(make_runtime: Callable[..., LocalRuntime]) -> LocalRuntime:
    """A LocalRuntime with the limits detected on this machine."""
    return make_runtime()


@pytest.fixture
def workload(tmp_path: Path) -> Callable[..., Workload]:
    """Build a Workload with small defaults: `workload("w1", ["cmd"], memory_mb=128, ...)`."""

    def build(
        workload_id: str,
        command: list[str],
        cpus: float = 1.0,
        memory_mb: int = 256,
        max_pids: int = 4096,
        **kw: object,
    ) -> Workload:
        kw.setdefault("workdir", tmp_path / "work" / workload_id)
        return Workload(
            id=workload_id,
            command=command,
            resources=Resources(cpus=cpus, memory_mb=memory_mb, max_pids=max_pids),
            **kw,  # type: ignore[arg-type]
        )

    return build
