"""A real two-node Ray cluster on this machine for the tests of this package, and every Atoll
server started here (by these tests or the acceptance tests they re-run) on the ray runtime.

The head (127.0.0.2) has 2 CPUs and no GPU; the second node (127.0.0.3) has 4 CPUs and one GPU
of type T4 (declared: Ray hands out its id without a device behind it) as the
``accelerator_type:T4`` resource. Each has 20 GB of Ray's ``memory`` resource, so c1.4 (32 GB)
fits the cluster's total but no one node.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from atoll.runtime.ray.cluster import LocalRayCluster, reap, release
from tests.support import server as server_support

GB = 1024**3
HEAD, GPU_NODE = "127.0.0.2", "127.0.0.3"


@pytest.fixture(scope="package", autouse=True)
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRayCluster]:
    root = tmp_path_factory.mktemp("ray")
    cluster = LocalRayCluster(root / "cluster", head_cpus=2, head_memory_bytes=20 * GB)
    node_dir = root / "node"
    try:
        cluster.start()
        cluster.add_node(cpus=4, gpus=1, resources={"accelerator_type:T4": 1}, memory_bytes=20 * GB)

        def env(data_dir: Path) -> dict[str, str]:
            # One namespace per data dir: a restarted server finds its own actors again.
            namespace = "t-" + hashlib.sha256(str(data_dir).encode()).hexdigest()[:12]
            return {
                "ATOLL_RUNTIME": "ray",
                "ATOLL_RAY_ADDRESS": cluster.address,
                "ATOLL_RAY_NODE_IP": HEAD,
                "ATOLL_RAY_NODE_DIR": str(node_dir),
                "ATOLL_RAY_NAMESPACE": namespace,
            }

        server_support.runtime_env = env
        server_support.after_stop = lambda srv: release(cluster.address, srv.env["ATOLL_RAY_NAMESPACE"], HEAD)
        yield cluster
    finally:
        server_support.runtime_env = None
        server_support.after_stop = None
        cluster.stop()
        reap(node_dir)
