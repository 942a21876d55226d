"""Previous runs of a node instance: a command that crashes on its first run is restarted, and
what it printed before, and why it ended, stay readable through the API and the CLI."""

from __future__ import annotations

import sys
import uuid
from typing import Any

import pytest

from tests.deploy.conftest import HEALTH, SERVICE, create_node, service_command, wait_for, wait_healthy
from tests.e2e.cli import Cli
from tests.notebooks.conftest import new_project
from tests.support.server import RunningServer

# Its first run leaves a marker in the working dir, says so and exits 3; the next one serves.
CRASH_ONCE = (
    r"""
import os, sys
marker = os.path.join(os.getcwd(), os.environ["MARKER"])
if not os.path.exists(marker):
    open(marker, "w").close()
    print("first run: giving up", flush=True)
    sys.exit(3)
print("second run: serving", flush=True)
"""
    + SERVICE
)


def deploy_crash_once(server: RunningServer, project_id: str) -> dict[str, Any]:
    """The crash-once node, Healthy after its one restart."""
    n = create_node(
        server,
        project_id,
        "crash-once",
        command=[sys.executable, "-u", "-c", CRASH_ONCE],
        env={"MARKER": f"crash-once-{uuid.uuid4().hex}"},
        healthCheck=HEALTH,
    )
    return wait_healthy(server, project_id, n["id"])


@pytest.fixture(scope="module")
def crashed(server: RunningServer, project: dict[str, Any]) -> dict[str, Any]:
    """A node whose only instance crashed once and now serves (Healthy after one restart)."""
    pid = project["id"]
    n = deploy_crash_once(server, pid)
    inst = n["instances"][0]
    assert inst["restarts"] == 1, n
    return {"project": pid, "node": n, "instance": inst["id"]}


def _logs(server: RunningServer, c: dict[str, Any], **params: Any) -> Any:
    with server.api() as api:
        path = f"/projects/{c['project']}/nodes/{c['node']['id']}/logs"
        return api.get(path, params={"instance": c["instance"], **params})


def test_previous_run_log_and_reason(server: RunningServer, crashed: dict[str, Any]) -> None:
    latest = _logs(server, crashed)
    assert latest.status_code == 200, latest.text
    assert "second run: serving" in latest.json()["data"] and "first run" not in latest.json()["data"]
    assert latest.json()["eof"] is False  # the latest run still writes

    before = _logs(server, crashed, run=1).json()
    assert before["data"] == "first run: giving up\n" and before["eof"] is True
    system = _logs(server, crashed, run=1, stream="system").json()["data"]
    assert "exited with code 3" in system, system

    with server.api() as api:
        path = f"/projects/{crashed['project']}/nodes/{crashed['node']['name']}"
        r = api.get(f"{path}/instances/{crashed['instance']}/runs")
        assert r.status_code == 200, r.text
        runs = r.json()
        assert [x["run"] for x in runs] == [0, 1]
        assert runs[0]["reason"] == "running" and runs[0]["state"] == "RUNNING"
        assert runs[0]["finishedAt"] is None and runs[0]["startedAt"]
        assert runs[1]["reason"] == "exited with code 3" and runs[1]["exitCode"] == 3
        assert runs[1]["state"] == "FAILED" and runs[1]["finishedAt"]
        assert runs[1]["workloadId"] != runs[0]["workloadId"]

        r = api.get(f"{path}/instances/ins_nope/runs")
        assert r.status_code == 404 and r.json()["errors"][0]["field"] == "instance", r.text

    # Past the runs it has: 404 naming run; past any instance's: invalid.
    r = _logs(server, crashed, run=2)
    assert r.status_code == 404, r.text
    assert r.json()["errors"][0]["field"] == "run" and "0 (the latest) to 1" in r.json()["detail"]
    for bad in ("99", "-1", "x"):
        r = _logs(server, crashed, run=bad)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "run", r.text


def test_other_projects_users_do_not_see_the_runs(
    server: RunningServer, project: dict[str, Any], crashed: dict[str, Any]
) -> None:
    other = new_project(server, "runs-other")["id"]
    with server.api() as api:
        body = {"username": "runs-outsider", "password": "outsider-pass-1", "organizationId": "default"}
        assert api.post("/users", json=body).status_code == 201
        r = api.post(
            f"/projects/{other}/access-bindings", json={"subject": "runs-outsider", "role": "editor"}
        )
        assert r.status_code == 201, r.text
        creds = {"username": "runs-outsider", "password": "outsider-pass-1", "name": "t"}
        r = api.post("/auth/tokens", json=creds)
        assert r.status_code == 201, r.text
    tok = r.json()["token"]
    node = f"/projects/{project['id']}/nodes/{crashed['node']['id']}"
    with server.api(tok) as api:
        for url in (f"{node}/instances/{crashed['instance']}/runs", f"{node}/logs?run=1"):
            r = api.get(url)
            assert r.status_code == 404, (url, r.text)
            assert "first run" not in r.text


def test_cli_previous_run_and_runs_table(
    server: RunningServer, project: dict[str, Any], crashed: dict[str, Any], tmp_path: Any
) -> None:
    cli = Cli(tmp_path, env={"ATOLL_URL": server.url, "ATOLL_TOKEN": server.admin_token})
    p = ["-p", project["id"]]
    out = cli.ok("node", "logs", "crash-once", *p, "--previous").out
    assert out == "first run: giving up\n", out
    assert "second run" in cli.ok("node", "logs", "crash-once", *p).out
    assert "first run" in cli.ok("node", "logs", "crash-once", *p, "--run", "1").out

    table = cli.ok("node", "runs", "crash-once", *p, "--instance", crashed["instance"]).out
    assert "exited with code 3" in table and "running" in table and "REASON" in table
    runs = cli.json("node", "runs", "crash-once", *p)  # the Healthy instance by default
    assert [r["reason"] for r in runs] == ["running", "exited with code 3"]

    err = cli.fail("node", "logs", "crash-once", *p, "--run", "99", code=2)
    assert "--run must be 0 (the latest) to 9" in err, err
    err = cli.fail("node", "logs", "crash-once", *p, "--run", "5")
    assert "no run 5" in err and "0 (the latest) to 1" in err
    assert "--previous" in cli.fail("node", "logs", "crash-once", *p, "--previous", "--run", "2", code=2)

    # An instance that never restarted has no previous run: one line saying so.
    pid = project["id"]
    steady = create_node(server, pid, "steady", command=service_command(), healthCheck=HEALTH)
    wait_healthy(server, pid, steady["id"])
    err = cli.fail("node", "logs", "steady", *p, "--previous")
    assert "has not restarted" in err, err
    runs = wait_for("one run of steady", lambda: cli.json("node", "runs", "steady", *p))
    assert [r["reason"] for r in runs] == ["running"]
