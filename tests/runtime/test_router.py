"""The runtime router: a workload's later calls go to the runtime its row names."""

from __future__ import annotations

from pathlib import Path

import pytest

from atoll.runtime.base import Resources, UnknownWorkload, Workload, WorkloadState
from atoll.runtime.local.runtime import LocalRuntime
from atoll.runtime.router import NoDocker, RuntimeRouter
from atoll.storage.logs import LogStore
from tests.runtime.conftest import wait_for


def test_rows_name_their_runtime_and_calls_go_there(tmp_path: Path) -> None:
    local = LocalRuntime(tmp_path / "state", LogStore(tmp_path / "logs"))
    router = RuntimeRouter(local)
    w = Workload(
        id="wl-router",
        command=["sh", "-c", "echo hi"],
        resources=Resources(cpus=0.5, memory_mb=128),
        workdir=tmp_path / "work",
    )
    assert router.runtime_for(w) is local and router.by_name == {"local": local}
    router.start(w)
    wait_for(lambda: router.named("local", w.id).status(w.id).state is WorkloadState.EXITED, 30, "the exit")
    # A row naming a runtime this server lacks (Docker, Ray) is unknown here, not guessed at.
    for other in ("docker", "ray"):
        with pytest.raises(UnknownWorkload):
            router.named(other, w.id)
    with pytest.raises(NoDocker, match="ATOLL_DOCKER_HOST"):
        router.runtime_for(
            Workload(id="wl-img", command=[], resources=w.resources, workdir=w.workdir, image="x")
        )
    router.forget(w.id)
