"""Warm actor hosts on Ray (issue 18, item 5): each node keeps an idle host started ahead, a job
starts on one with its room reserved by a placement group named after its workload, a restarted
server finds it there, the room is given back when the job is done, and a stopped server leaves no
host behind."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.jobs.test_restart import _log, _wait
from tests.ray.conftest import HEAD
from tests.support.server import RunningServer, start_server

FINAL = ("SUCCESS", "ERROR", "CANCELLED")
# A Ray driver of its own (the test process does not join the cluster): named actors of the
# server's namespace and the placement groups that hold room.
STATE = """
import json, logging, sys, ray
ray.init(address=sys.argv[1], namespace=sys.argv[2], _node_ip_address=sys.argv[3],
         log_to_driver=False, logging_level=logging.ERROR, configure_logging=False)
groups = [g.get("name") for g in ray.util.placement_group_table().values() if g.get("state") == "CREATED"]
print(json.dumps({"actors": ray.util.list_named_actors(), "groups": groups}))
"""


def ray_state(srv: RunningServer) -> dict[str, list[str]]:
    argv = [sys.executable, "-c", STATE, srv.env["ATOLL_RAY_ADDRESS"], srv.env["ATOLL_RAY_NAMESPACE"], HEAD]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True).stdout
    state: dict[str, list[str]] = json.loads(out.strip().splitlines()[-1])
    return state


def until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def system_log(api: httpx.Client, job_id: str) -> str:
    return str(api.get(f"/jobs/{job_id}/logs", params={"stream": "system"}).json()["data"])


def test_a_job_starts_on_a_warm_host_holds_its_room_and_survives_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    marker = tmp_path / "release"
    srv = start_server(data, extra_env={"ATOLL_CONTROLLER_TICK_S": "0.3"})
    try:
        api = srv.api()
        # One idle host per node (the head and the GPU node).
        until(lambda: sum(a.startswith("warm-") for a in ray_state(srv)["actors"]) >= 2, 120, "warm hosts")
        org = api.get("/organizations").json()["items"][0]["id"]
        com = api.post("/communities", json={"organizationId": org, "name": "warm"}).json()
        prj = api.post("/projects", json={"communityId": com["id"], "name": "warm"}).json()
        cfg = f"cmd: echo before; while [ ! -e {marker} ]; do sleep 0.1; done; echo after\n"
        cfg += "cloud-instance-types: [s1.1]\n"
        # A host may still be starting when the first job comes (that one gets an actor of its own):
        # jobs are tried until one says it runs on a warm host.
        job_id = ""
        for _ in range(30):
            r = api.post(f"/projects/{prj['id']}/jobs", json={"config": cfg})
            assert r.status_code == 201, r.text
            job_id = r.json()["job"]["id"]
            api.post(f"/jobs/{job_id}/execute").raise_for_status()
            until(lambda: "on Ray node" in system_log(api, job_id), 120, "the job to start")  # noqa: B023
            if "a warm host" in system_log(api, job_id):
                break
            api.post(f"/jobs/{job_id}/cancel", json={}).raise_for_status()
            _wait(api, job_id, FINAL)
            time.sleep(1)  # the pool takes a ready host in about once a second
        else:
            raise AssertionError("no job ever started on a warm host")
        assert _wait(api, job_id, ("EXECUTING",))["status"] == "EXECUTING"
        # Its room is held on Ray by a placement group (granted within a second or so).
        held = lambda: [g for g in ray_state(srv)["groups"] if g and g.startswith("wl-")]  # noqa: E731
        until(lambda: len(held()) == 1, 60, "its room held")
        token = srv.admin_token
    finally:
        srv.kill()  # kill -9: the job runs on without a server
    srv = start_server(data, extra_env={"ATOLL_CONTROLLER_TICK_S": "0.3"})
    try:
        api = srv.api(token)
        marker.write_text("go")
        job = _wait(api, job_id, FINAL)
        assert job["status"] == "SUCCESS", job["statusDetails"]
        assert _log(api, job_id) == "before\nafter\n"
        # Done and collected: its room is given back.
        until(lambda: not held(), 60, "the room back")
    finally:
        srv.stop()  # and, as after every server of this package, release() of what it left
    # A stopped server leaves no host, idle or not, and no room held.
    state = ray_state(srv)
    assert state == {"actors": [], "groups": []}, state
