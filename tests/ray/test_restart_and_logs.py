"""Restarts and the end of a cluster: a restarted server re-adopts jobs that run on Ray (the
restart acceptance test, re-run here), and a job's logs stay readable after the Ray cluster it
ran on is stopped and its node's files are gone."""

from __future__ import annotations

import shutil
from pathlib import Path

from atoll.runtime.ray.cluster import LocalRayCluster, reap
from tests.jobs.test_restart import (  # noqa: F401 - re-run on the ray runtime
    _log,
    _wait,
    test_jobs_survive_a_server_restart,
)
from tests.ray.conftest import GB, HEAD
from tests.support.server import start_server


def test_logs_of_a_job_outlive_the_ray_cluster(tmp_path: Path) -> None:
    cluster = LocalRayCluster(tmp_path / "cluster", head_cpus=2, head_memory_bytes=4 * GB)
    node_dir = tmp_path / "node"
    try:
        cluster.start()
        srv = start_server(
            tmp_path / "data",
            extra_env={
                "ATOLL_RAY_ADDRESS": cluster.address,
                "ATOLL_RAY_NODE_IP": HEAD,
                "ATOLL_RAY_NODE_DIR": str(node_dir),
                "ATOLL_RAY_NAMESPACE": "outlive",
            },
        )
        try:
            api = srv.api()
            org = api.get("/organizations").json()["items"][0]["id"]
            com = api.post("/communities", json={"organizationId": org, "name": "outlive"}).json()
            prj = api.post("/projects", json={"communityId": com["id"], "name": "outlive"}).json()
            cfg = "cmd: for i in 1 2 3; do echo line $i; done; echo oops >&2\ncloud-instance-types: [s1.1]\n"
            r = api.post(f"/projects/{prj['id']}/jobs", json={"config": cfg})
            assert r.status_code == 201, r.text
            job_id = r.json()["job"]["id"]
            api.post(f"/jobs/{job_id}/execute").raise_for_status()
            job = _wait(api, job_id, ("SUCCESS", "ERROR", "CANCELLED"))
            assert job["status"] == "SUCCESS", job
            # The cluster goes away, and with it every file its node kept.
            cluster.stop()
            reap(node_dir)
            shutil.rmtree(node_dir, ignore_errors=True)
            assert _log(api, job_id) == "line 1\nline 2\nline 3\n"
            assert api.get(f"/jobs/{job_id}/logs", params={"stream": "stderr"}).json()["data"] == "oops\n"
        finally:
            srv.stop()
    finally:
        cluster.stop()
        reap(node_dir)
