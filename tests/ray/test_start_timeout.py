"""A start Ray cannot place is given up after the runtime's start_timeout, with the reason (the
log pump's long polls must not make it wait forever). Run in a Ray driver of its own: the test
process does not join the cluster."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from atoll.runtime.ray.cluster import LocalRayCluster
from tests.ray.conftest import HEAD

DRIVER = """
import sys, time
from pathlib import Path
from atoll.runtime.base import Resources, Workload
from atoll.runtime.ray.runtime import RayRuntime
from atoll.storage.logs import LogStore

address, root = sys.argv[1], Path(sys.argv[2])
rt = RayRuntime(address, LogStore(root / "logs"), root / "state", str(root / "node"),
                namespace="start-timeout", node_ip=sys.argv[3], start_timeout=2)
w = Workload(id="wl-unplaceable00001", command=["true"], resources=Resources(cpus=64, memory_mb=64),
             workdir=root / "wd")
rt.start(w)
deadline = time.monotonic() + 60
while not (st := rt.status(w.id)).state.finished and time.monotonic() < deadline:
    time.sleep(0.2)
print(st.state.value, st.detail)
rt.forget(w.id)
rt.close()
"""


def test_a_start_ray_cannot_place_is_given_up(ray_cluster: LocalRayCluster, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, ray_cluster.address, str(tmp_path), HEAD],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    assert done.stdout.strip().splitlines()[-1] == "failed Ray did not place it within 2 s", done.stdout
