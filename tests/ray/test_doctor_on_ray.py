"""`atoll doctor` on the ray runtime reports the cluster and each node's resources."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from atoll.runtime.ray.cluster import LocalRayCluster
from tests.e2e.cli import ATOLL
from tests.ray.conftest import GPU_NODE, HEAD


def test_doctor_reports_the_cluster_and_its_nodes(ray_cluster: LocalRayCluster, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "ATOLL_DATA_DIR": str(tmp_path / "data"),
        "ATOLL_RUNTIME": "ray",
        "ATOLL_RAY_ADDRESS": ray_cluster.address,
        "ATOLL_RAY_NODE_IP": HEAD,
        "ATOLL_URL": "http://127.0.0.1:9",
        "COLUMNS": "200",  # the table's lines unwrapped, as on a wide terminal
    }
    r = subprocess.run(
        [ATOLL, "doctor", "--format", "json"], env=env, capture_output=True, text=True, timeout=120
    )
    report = json.loads(r.stdout)
    cluster = report["cluster"]
    assert cluster["ok"], cluster
    nodes = {n["address"]: n for n in cluster["nodes"]}
    assert nodes[HEAD]["cpus"] == 2 and nodes[HEAD]["gpus"] == []
    assert nodes[GPU_NODE]["cpus"] == 4 and nodes[GPU_NODE]["gpus"] == ["T4"]
    assert nodes[GPU_NODE]["memoryGb"] == 20
    # The table names the cluster and its nodes too.
    table = subprocess.run([ATOLL, "doctor"], env=env, capture_output=True, text=True, timeout=120).stdout
    assert "ray cluster" in table and "4 CPUs, 20 GB, GPUs: T4" in table, table


def test_doctor_fails_in_one_line_when_the_cluster_is_unreachable(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "ATOLL_DATA_DIR": str(tmp_path / "data"),
        "ATOLL_RUNTIME": "ray",
        "ATOLL_RAY_ADDRESS": "127.0.0.9:1",
        "ATOLL_URL": "http://127.0.0.1:9",
        "COLUMNS": "200",  # the table's lines unwrapped, as on a wide terminal
    }
    r = subprocess.run(
        [ATOLL, "doctor", "--format", "json"], env=env, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 1
    cluster = json.loads(r.stdout)["cluster"]
    assert not cluster["ok"] and "cannot reach the Ray cluster at 127.0.0.9:1" in cluster["message"]
