"""`atoll node|alias|model`: deploy a command as nodes, publish them under an alias, call both
through the real gateway, move traffic, suspend/resume, delete; every error one line."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.deploy.conftest import FAST, SERVICE, gateway_ready, wait_for
from tests.e2e.cli import PYCACHE, Cli
from tests.notebooks.conftest import new_project
from tests.support.server import RunningServer, start_server
from tests.support.tenants import stop_workloads

# The test service, saying something on stdout first so `node logs` has a line to show.
COMMAND = shlex.join(
    [sys.executable, "-u", "-c", "print('serving on', __import__('os').environ['PORT'])\n" + SERVICE]
)
HEALTH = [
    "--health-path", "/health", "--health-interval", "0.5", "--health-timeout", "1",
    "--healthy-threshold", "1", "--unhealthy-threshold", "1",
]  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """`atoll up` with its gateway, with quick controller ticks (replaces the e2e default)."""
    env = {**FAST, "PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": str(PYCACHE)}
    srv = start_server(tmp_path_factory.mktemp("cli-deploy") / "data", extra_env=env)
    try:
        yield srv
    finally:
        srv.stop()
        stop_workloads(srv.data_dir / "runtime")  # nodes' instances outlive `atoll up` by design


def _node(server: RunningServer, pid: str, ref: str) -> dict[str, Any]:
    with server.api() as api:
        return dict(api.get(f"/projects/{pid}/nodes/{ref}").json())


def _last_error(r: Any) -> str:
    """The command failed with one `error:` line last on stderr (progress lines may precede it)."""
    assert r.code == 1 and "Traceback" not in r.err, str(r)
    last = r.err.strip().splitlines()[-1]
    assert last.startswith("error: "), str(r)
    return str(last)


def test_deploy_cli(server: RunningServer, admin: Cli) -> None:
    pid = new_project(server, "cli-deploy")["id"]
    p = ["-p", pid]
    gw = ["--gateway", server.gateway_url]

    # No models yet.
    assert admin.json("model", "list", *p) == []
    assert "no models" in admin.ok("model", "list", *p).err

    # Two nodes of the same command, told apart by VERSION; the first waits with progress.
    a_args = ["--command", COMMAND, "--env", "VERSION=a", "-c", "s1.1", *HEALTH]
    r = admin.ok("node", "create", "svc-a", *p, *a_args, "--wait", "--timeout", "60")
    assert "Created node svc-a" in r.out and "Healthy, 1/1" in r.out, str(r)
    b_args = [
        "--command-arg",
        sys.executable,
        "--command-arg=-c",
        "--command-arg",
        SERVICE,
        "--env",
        "VERSION=b",
    ]
    b = admin.json("node", "create", "svc-b", *p, *b_args, "-c", "s1.1", *HEALTH, "--wait")
    assert b["status"] == "Healthy" and b["kind"] == "command" and b["instances"][0]["status"] == "Healthy"

    listed = admin.json("node", "list", *p)
    assert [(n["name"], n["status"]) for n in listed] == [("svc-a", "Healthy"), ("svc-b", "Healthy")]
    table = admin.ok("node", "list", *p).out
    assert "HEALTHY/MIN" in table and "svc-a" in table and "1/1" in table and "s1.1" in table
    got = admin.ok("node", "get", "svc-a", *p).out
    assert "Healthy" in got and "INSTANCE" in got and "in balancing" in got and "VERSION" in got

    # An alias, called through the gateway; the node called by id through it too, and via the API.
    r = admin.ok("alias", "create", "cli-svc", *p, "--node", "svc-a=100", "--meta", "team=ml")
    assert "svc-a=100%" in r.out
    gateway_ready(server, "cli-svc", server.admin_token)
    r = admin.ok("alias", "request", "cli-svc", *p, *gw, "--path", "/hello?x=1")
    assert r.out.startswith("HTTP 200") and json.loads(r.out.split("\n", 1)[1])["version"] == "a", str(r)
    reply = admin.json("node", "request", "svc-b", *p, *gw, "--data", '{"a": 1}')
    assert reply["status"] == 200 and json.loads(reply["body"]) == {"version": "b", "len": 8}
    r = admin.ok("node", "request", "svc-b", *p, "--via-api", "--path", "/x")
    assert f"instance {b['instances'][0]['id']}" in r.out and '"path": "/x"' in r.out, str(r)
    assert "cli-svc" in admin.ok("alias", "get", "cli-svc", *p, *gw).out

    # The endpoint: a flag changes its one setting (no rollout); a bad value is one clear line.
    changed = admin.json("node", "update", "svc-b", *p, "--max-concurrency", "4", "--request-timeout", "120")
    assert (
        changed["spec"]["endpoint"]["maxConcurrency"] == 4 and changed["spec"]["endpoint"]["timeoutS"] == 120
    )
    assert changed["revision"] == b["revision"]
    assert "endpoint.type" in admin.fail("node", "update", "svc-b", *p, "--protocol", "smtp")
    assert "maxConcurrency" in admin.ok("node", "get", "svc-b", *p).out

    # Errors: one line each, the API's field named where it has one.
    assert "NODE=WEIGHT" in admin.fail("alias", "create", "bad", *p, "--node", "svc-a", code=2)
    assert "whole percentage" in admin.fail("alias", "create", "bad", *p, "--node", "svc-a=half", code=2)
    line = admin.fail("alias", "create", "bad", *p, "--node", "svc-a=50", "--node", "svc-b=40")
    assert "nodes: the weights must add up to 100 (they add up to 90)" in line
    assert "nodes[0].nodeId" in admin.fail("alias", "create", "bad", *p, "--node", "nope=100")
    assert "'nope' not found" in admin.fail("node", "get", "nope", *p)
    assert "say what the node runs" in admin.fail("node", "create", "x", *p, code=2)
    assert "runs one of" in admin.fail("node", "create", "x", *p, "--command", "x", "--image", "y", code=2)
    assert "sends 100% of its requests" in admin.fail("node", "delete", "svc-a", *p, "--yes")

    # Move all traffic to svc-b at once; then svc-a can go.
    r = admin.ok("alias", "update", "cli-svc", *p, "--node", "svc-a=0", "--node", "svc-b=100")
    assert "svc-b=100%" in r.out

    def switched() -> bool:
        headers = {"x-node-alias": "cli-svc", "authorization": f"Bearer {server.admin_token}"}
        return bool(httpx.get(server.gateway_url + "/", headers=headers).json()["version"] == "b")

    wait_for("the alias to switch", switched, timeout=10)
    assert '"version": "b"' in admin.ok("alias", "request", "cli-svc", *p, *gw).out

    # Logs of svc-a's instance: the service's first line.
    assert "serving on" in admin.ok("node", "logs", "svc-a", *p).out

    # Suspend: no instances; resume: Healthy again.
    assert admin.json("node", "suspend", "svc-a", *p)["suspended"] is True
    wait_for("svc-a suspended", lambda: (n := _node(server, pid, "svc-a"))["status"] == "Suspended"
             and not n["instances"], timeout=20)  # fmt: skip
    n = admin.json("node", "get", "svc-a", *p)
    assert n["status"] == "Suspended" and n["instances"] == []
    assert "the request got HTTP" in admin.fail("node", "request", "svc-a", *p, *gw)
    r = admin.ok("node", "resume", "svc-a", *p, "--wait", "--timeout", "60")
    assert "Resumed node svc-a: Healthy, 1/1" in r.out, str(r)

    # A change to what runs rolls out; --wait returns once the new revision serves.
    r = admin.ok("node", "update", "svc-b", *p, "--env", "VERSION=b2", "--wait", "--timeout", "60")
    assert "revision 2 is live" in r.out, str(r)
    assert '"version": "b2"' in admin.ok("node", "request", "svc-b", *p, *gw).out

    # A node that never gets Healthy: --wait gives up with the instance's detail.
    sleeper = f"{sys.executable} -c 'import time; time.sleep(60)'"
    r = admin.run(
        "node",
        "create",
        "broken",
        *p,
        "--command",
        sleeper,
        "-c",
        "s1.1",
        *HEALTH,
        "--wait",
        "--timeout",
        "3",
    )
    line = _last_error(r)
    assert "node broken is not Healthy after 3 s" in line and "last instance" in line, str(r)

    r = admin.ok("node", "delete", "svc-a", *p, "--yes")
    assert "Deleting node svc-a" in r.out
    assert "Deleting" in admin.ok("node", "delete", "broken", *p, "--yes").out
    admin.ok("alias", "delete", "cli-svc", *p, "--yes")
    assert admin.json("alias", "list", *p) == []
    names = {n["name"]: n["status"] for n in admin.json("node", "list", *p)}
    assert names.get("svc-b") == "Healthy" and names.get("svc-a") in (None, "Deleting")
