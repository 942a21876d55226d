"""A server restart loses nothing: running jobs are re-adopted, finished ones are recorded."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.server import RunningServer, start_server

V = "/api/v1"


def _wait(api: httpx.Client, job_id: str, states: tuple[str, ...], timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.get(f"/jobs/{job_id}").json()
        if job["status"] in states:
            return dict(job)
        time.sleep(0.3)
    raise AssertionError(f"{job_id} never reached {states}: {api.get(f'/jobs/{job_id}').json()}")


def _log(api: httpx.Client, job_id: str) -> str:
    return str(api.get(f"/jobs/{job_id}/logs").json()["data"])


def _start(data: Path) -> RunningServer:
    return start_server(data, extra_env={"ATOLL_CONTROLLER_TICK_S": "0.3"})


def test_jobs_survive_a_server_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = _start(data)
    try:
        api = srv.api()
        org = api.get("/organizations").json()["items"][0]["id"]
        com = api.post("/communities", json={"organizationId": org, "name": "restart"}).json()
        prj = api.post("/projects", json={"communityId": com["id"], "name": "restart"}).json()
        marker = tmp_path / "release"
        # Job A waits for a marker file, so it is surely running across the restart.
        cfg_a = f"cmd: echo before; while [ ! -e {marker} ]; do sleep 0.1; done; echo after\n"
        cfg_a += "cloud-instance-types: [s1.1]\n"
        # Job B finishes while the server is down.
        cfg_b = f"cmd: while [ ! -e {marker} ]; do sleep 0.1; done; exit 4\ncloud-instance-types: [s1.1]\n"
        ids = []
        for cfg in (cfg_a, cfg_b):
            r = api.post(f"/projects/{prj['id']}/jobs", json={"config": cfg})
            assert r.status_code == 201, r.text
            ids.append(r.json()["job"]["id"])
            api.post(f"/jobs/{ids[-1]}/execute").raise_for_status()
        for jid in ids:
            _wait(api, jid, ("EXECUTING",))
        token = srv.admin_token
    finally:
        srv.kill()  # kill -9: no shutdown code runs
    marker.write_text("go")  # both jobs go on to their end while no server runs
    time.sleep(1)
    srv = _start(data)
    try:
        api = httpx.Client(base_url=srv.url + V, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        a = _wait(api, ids[0], ("SUCCESS", "ERROR", "CANCELLED"))
        b = _wait(api, ids[1], ("SUCCESS", "ERROR", "CANCELLED"))
        assert a["status"] == "SUCCESS", (a["statusDetails"], b["statusDetails"])
        assert _log(api, ids[0]) == "before\nafter\n"
        assert b["status"] == "ERROR" and b["returnCode"] == 4, b["statusDetails"]
        # Nothing is left behind: no supervisor or job process of ours still runs.
        assert _our_processes(data) == []
    finally:
        srv.stop()


def _our_processes(data: Path) -> list[str]:
    """Processes whose command line mentions this server's data dir (shims, job commands), but
    for the running server's data plane (HAProxy's keeper, which outlives `atoll up` by design
    and which `srv.stop()` stops)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(data) in cmdline and "atoll.dataplane.keeper" not in cmdline:
            found.append(f"{proc.name}: {cmdline}")  # the server gets its data dir from the env
    return found
