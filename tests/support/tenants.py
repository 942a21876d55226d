"""Hostile-tenant scenarios: a real root `atoll up` whose projects' workloads run as their own
uids (in their own /tmp, /proc and network where the machine can), and jobs run through its API."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from atoll.runtime.local.netns import ProjectNetworks
from atoll.runtime.local.proc_files import is_same_process
from tests.support.leaks import register_root
from tests.support.server import RunningServer, start_server

DONE = ("SUCCESS", "ERROR", "CANCELLED")


@contextmanager
def root_server(prefix: str, extra_env: dict[str, str] | None = None) -> Iterator[RunningServer]:
    """A server whose data dir other users may pass through, as /var/lib/atoll (else Atoll would
    not switch users). Not under /tmp: workloads get their project's /tmp over it, which would
    hide the data dir. Its projects' network namespaces are removed with it."""
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/lib"))
    register_root(root)
    root.chmod(0o755)
    server = start_server(root / "data", extra_env={"ATOLL_CONTROLLER_TICK_S": "0.2", **(extra_env or {})})
    try:
        yield server
    finally:
        server.stop()
        stop_workloads(root / "data" / "runtime")
        ProjectNetworks(root / "data" / "runtime").remove_all()
        shutil.rmtree(root, ignore_errors=True)


def stop_workloads(state_dir: Path) -> None:
    """Kill what still runs of a stopped server's workloads (they outlive `atoll up` by design,
    to be re-adopted) and of its warm pool: each supervisor's session and each command's process
    group, by the pids the runtime recorded (never by name)."""
    for record in [*state_dir.glob("*/*.json"), *state_dir.glob(".warm/*/*/*.json")]:
        if record.name not in ("shim.json", "started.json", "parked.json"):
            continue
        try:
            info = json.loads(record.read_text())
            pid = int(info["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if is_same_process(pid, info.get("start_time")):  # not a stranger who reused the number
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


def new_project(api: httpx.Client, name: str) -> str:
    org = api.get("/organizations").json()["items"][0]["id"]
    coms = api.get("/communities").json()["items"]
    if not coms:
        coms = [api.post("/communities", json={"organizationId": org, "name": "tenants"}).json()]
    r = api.post("/projects", json={"communityId": coms[0]["id"], "name": name})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def job_config(cmd: str, extra: str = "") -> str:
    """A config.yaml running ``cmd`` (JSON-quoted: valid YAML) on s1.1, plus ``extra`` keys."""
    return f"cmd: {json.dumps(cmd)}\ncloud-instance-types: [s1.1]\n{extra}"


def submit(api: httpx.Client, project: str, config: str) -> str:
    r = api.post(f"/projects/{project}/jobs", json={"config": config})
    assert r.status_code == 201, r.text
    job_id = str(r.json()["job"]["id"])
    api.post(f"/jobs/{job_id}/execute").raise_for_status()
    return job_id


def logs(api: httpx.Client, job_id: str, *streams: str) -> str:
    return "".join(
        str(api.get(f"/jobs/{job_id}/logs", params={"stream": s}).json()["data"])
        for s in streams or ("stdout",)
    )


def finish(api: httpx.Client, job_id: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (j := api.get(f"/jobs/{job_id}").json())["status"] not in DONE:
        assert time.monotonic() < deadline, j
        time.sleep(0.2)
    return dict(j)
