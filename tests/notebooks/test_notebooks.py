"""Notebook servers end to end: a real Atoll opens a real JupyterLab per project, behind its
gateway, and releases it when idle (issue 4)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from atoll.envs.builtins import DEFAULT
from atoll.runtime.local.proc_files import is_same_process, read_json
from tests.e2e.cli import Cli
from tests.notebooks.conftest import (
    FAST,
    Kernel,
    boot,
    new_project,
    notebook_secret,
    open_and_wait,
    stop_all,
    stop_and_wait,
    wait_state,
)
from tests.runtime.conftest import wait_for
from tests.support.server import ADMIN_PASSWORD, RunningServer, start_server, user_password

NUMPY = DEFAULT.version_of("numpy")


def make_user(server: RunningServer, name: str) -> str:
    """A member of the organization with no role on any project; returns their API token."""
    with server.api() as api:
        org = api.get("/organizations").json()["items"][0]["id"]
        body = {"username": name, "password": user_password(name), "organizationId": org}
        r = api.post("/users", json=body)
        assert r.status_code == 201, r.text
    creds = {"username": name, "password": user_password(name), "name": "t"}
    r = httpx.post(server.url + "/api/v1/auth/tokens", json=creds)
    r.raise_for_status()
    return str(r.json()["token"])


def grant(server: RunningServer, project_id: str, username: str, role: str) -> None:
    with server.api() as api:
        r = api.post(f"/projects/{project_id}/access-bindings", json={"subject": username, "role": role})
        assert r.status_code in (200, 201), r.text


def test_open_run_cell_and_only_developers_get_in(atoll: RunningServer) -> None:
    project = new_project(atoll, "nb-open")
    pid = project["id"]
    nb = open_and_wait(atoll, pid)
    assert nb["url"] == f"/nb/{pid}/lab"
    assert nb["configuration"] == "s1.1"
    phases = [p["phase"] for p in nb["timeline"]]
    assert phases == ["preparing", "queued", "starting", "ready"]
    assert nb["idle"]["timeout"] == "10800s" and nb["idle"]["secondsLeft"] > 10000

    kernel = Kernel(atoll, pid)
    # The default environment's data-science stack, as locked in the repository (issue 17).
    stack = "import pandas, sklearn, matplotlib, scipy, xgboost, lightgbm, numpy"
    assert kernel.run(f"{stack}; print(numpy.__version__)").strip() == NUMPY
    # The project's storage is the server's root and its working dir.
    assert kernel.run("import os; print(os.environ['DS_PROJECT_HOME'] == os.getcwd())").strip() == "True"
    jupyter_token = notebook_secret(atoll, pid).secret
    assert len(jupyter_token) == 64
    kernel.close()

    # Jupyter's own token never reaches the client (pages, API answers), the database or the log.
    lab = httpx.get(f"{atoll.url}{nb['url']}", headers=kernel.headers, timeout=30)
    assert lab.status_code == 200 and "JupyterLab" in lab.text
    with atoll.api() as api:
        status = api.get(f"/projects/{pid}/notebook").text
        workloads = api.get(f"/projects/{pid}/jobs").text
    for where, text in (
        ("lab page", lab.text),
        ("status", status),
        ("jobs", workloads),
        ("log", atoll.log()),
    ):
        assert jupyter_token not in text, where
    for f in atoll.data_dir.glob("atoll.db*"):
        assert jupyter_token.encode() not in f.read_bytes(), f

    # No role: 404 (as for a missing project); Viewer: 403; both for HTTP and the WebSocket.
    stranger = make_user(atoll, "stranger")
    viewer = make_user(atoll, "viewer")
    grant(atoll, pid, "viewer", "viewer")
    ws_url = kernel.base.replace("http://", "ws://") + f"/api/kernels/{kernel.id}/channels"
    for tok, status in ((stranger, 404), (viewer, 403)):
        h = {"Authorization": f"Bearer {tok}"}
        assert httpx.get(f"{kernel.base}/api/kernels", headers=h).status_code == status
        assert httpx.get(f"{kernel.base}/lab", headers=h).status_code == status
        with pytest.raises(InvalidStatus) as e:
            connect(ws_url, additional_headers=h, open_timeout=10)
        assert e.value.response.status_code == status
    # Anonymous: 401 for the API, the sign-in page for a browser.
    assert httpx.get(f"{kernel.base}/api/kernels").status_code == 401
    page = httpx.get(f"{kernel.base}/lab", headers={"Accept": "text/html"})
    assert page.status_code == 303 and page.headers["location"].startswith("/login?next=")
    # A Developer gets in.
    dev = make_user(atoll, "dev")
    grant(atoll, pid, "dev", "developer")
    assert (
        httpx.get(f"{kernel.base}/api/kernels", headers={"Authorization": f"Bearer {dev}"}).status_code == 200
    )


def test_cookie_sessions_need_atolls_own_origin(atoll: RunningServer) -> None:
    """Jupyter skips its XSRF check for token-authenticated calls: the gateway stops CSRF."""
    pid = new_project(atoll, "nb-origin")["id"]
    open_and_wait(atoll, pid)
    browser = httpx.Client(base_url=atoll.url, timeout=30)
    r = browser.post("/api/v1/auth/sessions", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert r.status_code == 200, r.text
    base = f"/nb/{pid}/api/kernels"
    assert browser.get(base).status_code == 200  # reads need no Origin
    assert browser.post(base, json={}).status_code == 403  # no Origin: refused
    assert browser.post(base, json={}, headers={"Origin": "http://evil.example"}).status_code == 403
    ok = browser.post(base, json={}, headers={"Origin": atoll.url})
    assert ok.status_code == 201, ok.text
    ws_url = atoll.url.replace("http://", "ws://") + f"{base}/{ok.json()['id']}/channels"
    cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
    with pytest.raises(InvalidStatus) as e:
        connect(ws_url, additional_headers={"Cookie": cookie, "Origin": "http://evil.example"})
    assert e.value.response.status_code == 403
    with connect(ws_url, additional_headers={"Cookie": cookie, "Origin": atoll.url}, open_timeout=10):
        pass


def test_pip_installed_packages_persist_across_restarts_of_the_server(atoll: RunningServer) -> None:
    pid = new_project(atoll, "nb-pip")["id"]
    open_and_wait(atoll, pid)
    kernel = Kernel(atoll, pid)
    assert "No module named 'tabulate'" in kernel.run("import tabulate")
    out = kernel.run("%pip install --quiet tabulate==0.9.0", timeout=300)
    assert "error" not in out.lower(), out
    kernel.close()
    stopped = stop_and_wait(atoll, pid)
    assert stopped["state"] == "STOPPED" and "stopped by admin" in stopped["detail"]
    # The server was metered while it was held (s1.1: 1 unit per second), like any workload.
    with atoll.api() as api:
        held = api.get(f"/projects/{pid}/usage").json()["units"]
    assert held >= 2, held
    open_and_wait(atoll, pid)
    kernel = Kernel(atoll, pid)
    assert kernel.run("import tabulate; print(tabulate.__version__)").strip() == "0.9.0"
    # Installed into the project's own layer, not into the base environment every project shares.
    layer = kernel.run("import os; print(tabulate.__file__.startswith(os.environ['VIRTUAL_ENV']))")
    assert layer.strip() == "True"
    kernel.close()


def test_idle_server_is_released_but_a_busy_kernel_keeps_it(atoll: RunningServer) -> None:
    idle = new_project(atoll, "nb-idle", vmInactivityTimeout="4s")["id"]
    busy = new_project(atoll, "nb-busy", vmInactivityTimeout="4s")["id"]
    open_and_wait(atoll, idle)
    open_and_wait(atoll, busy)
    # The idle one: a connected kernel channel and a tab polling the API are no sign of work.
    tab = Kernel(atoll, idle)
    tab.connect()
    # The busy one: a cell running for 15 s with no browser attached.
    worker = Kernel(atoll, busy)
    msg = worker.send("import time; time.sleep(15); print('done')")
    worker.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        httpx.get(f"{tab.base}/api/kernels", headers=tab.headers)
        with atoll.api() as api:
            state = api.get(f"/projects/{idle}/notebook").json()
        if state["state"] in ("STOPPED", "FAILED"):
            break
        time.sleep(1)
    assert state["state"] == "STOPPED", state
    assert "without activity" in state["detail"] and "vmInactivityTimeout" in state["detail"]
    tab.close()
    with atoll.api() as api:
        kept = api.get(f"/projects/{busy}/notebook").json()
    assert kept["state"] == "READY", kept
    assert kept["idle"]["lastActivity"] == "a kernel is busy"
    # When the cell ends, nothing computes: released after the timeout.
    released = wait_state(atoll, busy, ("STOPPED",), timeout=40)
    assert "without activity" in released["detail"]
    assert msg


def test_stale_cell_is_interrupted(atoll: RunningServer) -> None:
    pid = new_project(atoll, "nb-stale", staleExecTimeoutMode="ONE_HOUR")["id"]
    open_and_wait(atoll, pid)
    kernel = Kernel(atoll, pid)
    started = time.monotonic()
    out, reply = kernel.collect(kernel.send("import time; time.sleep(120)"), timeout=60)
    assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt", (out, reply)
    assert time.monotonic() - started < 60
    # A computing cell is not stale: it runs to its end.
    out = kernel.run("t = time.time()\nwhile time.time() - t < 6: pass\nprint('finished')", timeout=60)
    assert out.strip() == "finished"
    kernel.close()


def test_server_restart_readopts_notebook_servers_and_kernels_survive(
    atoll: RunningServer, tmp_path: Path
) -> None:
    pid = new_project(atoll, "nb-restart")["id"]
    open_and_wait(atoll, pid)
    kernel = Kernel(atoll, pid)
    kernel.run("x = 41")
    kernel.close()
    atoll.kill()  # SIGKILL: a crash, not a shutdown
    again = start_server(atoll.data_dir, extra_env=FAST)
    try:
        nb = wait_state(again, pid, ("READY",), timeout=30)
        assert nb["state"] == "READY"
        same = Kernel(again, pid, kernel_id=kernel.id)
        assert same.run("print(x + 1)").strip() == "42"
        same.close()
    finally:
        try:
            stop_all(again)
        finally:
            again.stop()


def test_cli_open_status_stop(atoll: RunningServer, tmp_path: Path) -> None:
    new_project(atoll, "nb-cli", vmInactivityTimeout="2h")
    cli = Cli(tmp_path / "cli", env={"ATOLL_URL": atoll.url, "ATOLL_TOKEN": atoll.admin_token})
    # A configuration this installation lacks: one line naming it, nothing opened.
    bad = cli.fail("notebook", "open", "-p", "nb-cli", "--configuration", "x9.9")
    assert "x9.9" in bad and "catalogue" in bad
    opened = cli.ok("notebook", "open", "-p", "nb-cli")
    url = opened.out.strip().splitlines()[-1]
    assert url.startswith(f"{atoll.url}/nb/prj-") and url.endswith("/lab"), opened
    assert "ready on s1.1" in opened.out and "preparing" in opened.out
    status = cli.ok("notebook", "status", "-p", "nb-cli").out
    # Activity seen this very second (the kernel's start counts) leaves the whole 2h.
    assert "state:         READY" in status, status
    assert re.search(r"idle release:  in (1h59m[0-5][0-9]s|2h00m00s) \(vmInactivityTimeout 7200s", status), (
        status
    )
    assert cli.json("notebook", "status", "-p", "nb-cli")["state"] == "READY"
    # Another configuration while it runs: refused, saying how to get there.
    other = cli.fail("notebook", "open", "-p", "nb-cli", "-c", "s1.2")
    assert "stop it before opening it on s1.2" in other
    assert "Stopping" in cli.ok("notebook", "stop", "-p", "nb-cli").out
    pid = cli.json("notebook", "status", "-p", "nb-cli")["projectId"]
    wait_state(atoll, pid, ("STOPPED",))
    assert "not running" in cli.ok("notebook", "stop", "-p", "nb-cli").out


def _notebook(*sources: str) -> str:
    cells = [
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": src}
        for src in sources
    ]
    return json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def _wait_operation(atoll: RunningServer, pid: str, op_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with atoll.api() as api:
        while True:
            op = api.get(f"/projects/{pid}/executions/{op_id}").json()
            if op["done"]:
                return dict(op)
            assert time.monotonic() < deadline, op
            time.sleep(0.3)


def test_execute_a_notebook_by_api(atoll: RunningServer) -> None:
    """Spec §4.1: projects/{id}:execute with inputVariables as env vars and outputVariableNames."""
    pid = new_project(atoll, "nb-exec")["id"]
    home = atoll.data_dir / "projects" / pid / "home"
    (home / "work").mkdir(parents=True)
    (home / "work" / "double.ipynb").write_text(
        _notebook(
            "import os, numpy\nn = int(os.environ['N'])",
            "result = int(numpy.int64(n) * 2)\nlabel = os.environ['LABEL'] + '!'",
            "shape = numpy.zeros((2, 3))",
        )
    )
    (home / "broken.ipynb").write_text(_notebook("x = 1", "raise ValueError('no luck')"))
    with atoll.api() as api:
        # Bad input: one message naming the field, nothing queued.
        for body, field in (
            ({"notebookId": "../etc/passwd.ipynb"}, "notebookId"),
            ({"notebookId": "missing.ipynb"}, "notebookId"),
            ({"notebookId": "work/double.ipynb", "inputVariables": {"PATH": "/tmp"}}, "inputVariables.PATH"),
            (
                {"notebookId": "work/double.ipynb", "outputVariableNames": ["not a name"]},
                "outputVariableNames",
            ),
            ({"notebookId": "work/double.ipynb", "cellId": "c1"}, "cellId"),
        ):
            r = api.post(f"/projects/{pid}:execute", json=body)
            assert r.status_code == 422, r.text
            assert field in r.text, r.text
        r = api.post(
            f"/projects/{pid}:execute",
            json={
                "notebookId": "work/double.ipynb",
                "inputVariables": {"N": 21, "LABEL": "done"},
                "outputVariableNames": ["result", "label", "shape"],
            },
        )
        assert r.status_code == 202, r.text
        op = r.json()
        assert op["done"] is False and op["metadata"]["configuration"] == "s1.1"
        failing = api.post(f"/projects/{pid}:execute", json={"notebookId": "broken.ipynb"}).json()
    done = _wait_operation(atoll, pid, op["id"])
    assert done["error"] is None, done
    outputs = done["response"]["outputVariables"]
    assert outputs["result"] == 42 and outputs["label"] == "done!"
    assert outputs["shape"].startswith("array(")  # not JSON: its repr
    failed = _wait_operation(atoll, pid, failing["id"])
    assert failed["response"] is None and "no luck" in failed["error"]["message"]
    # The executed notebook is kept with the run, outside the user's files.
    assert (atoll.data_dir / "projects" / pid / "runs" / op["id"] / "executed.ipynb").is_file()


def _parked(server: RunningServer) -> dict[Path, dict[str, Any]]:
    """The runtime's parked (warm) processes: their dir and parked.json."""
    found = {}
    for f in (server.data_dir / "runtime" / ".warm").glob("*/*/parked.json"):
        info = read_json(f)
        if info is not None and is_same_process(info.get("pid"), info.get("start_time")):
            found[f.parent] = info
    return found


def _kill_parked(server: RunningServer) -> None:
    """Whatever warm processes a failed test left: by their recorded pids (never by name)."""
    for d in (server.data_dir / "runtime" / ".warm").glob("*/*"):
        for name in ("parked.json", "shim.json"):
            info = read_json(d / name) or {}
            if not is_same_process(info.get("pid"), info.get("start_time")):
                continue
            with contextlib.suppress(ProcessLookupError):
                if name == "parked.json":  # the warm process leads its own process group
                    os.killpg(int(info["pid"]), signal.SIGKILL)
                else:
                    os.kill(int(info["pid"]), signal.SIGKILL)


def test_warm_pool_opens_jupyterlab_on_a_loaded_process(tmp_path: Path) -> None:
    server = boot(tmp_path, ATOLL_NOTEBOOK_WARM_POOL="1")
    try:
        wait_for(lambda: _parked(server), 180, "a warm JupyterLab process")
        [(parked_dir, info)] = _parked(server).items()
        warm_pid = int(info["pid"])
        pid = new_project(server, "nb-warm")["id"]
        nb = open_and_wait(server, pid)
        assert nb["state"] == "READY"
        kernel = Kernel(server, pid)
        # The kernel's grandparent (its parent is the kernel zygote the server forked at start) is
        # the project's JupyterLab, the process that was parked.
        home_is_cwd = "os.getcwd() == os.environ['DS_PROJECT_HOME']"
        grandparent = "int(open(f'/proc/{os.getppid()}/stat').read().rsplit(')', 1)[1].split()[1])"
        out = kernel.run(f"import os, sys\nprint({grandparent}, sys.executable, {home_is_cwd})").split()
        assert int(out[0]) == warm_pid
        # Kernels run on the project's own layer (where %pip installs go), as after a fresh start.
        assert out[1] == str(server.data_dir / "projects" / pid / "notebook-env" / "bin" / "python")
        assert out[2] == "True"
        assert kernel.run("import numpy; print(numpy.__version__)").strip() == NUMPY
        jupyter_token = notebook_secret(server, pid).secret
        # The warm process got the secret with its claim, and its kernels do not inherit it.
        assert jupyter_token not in kernel.run("import os; print(os.environ)")
        kernel.close()
        # The same server as a fresh start: its own base URL and private config (no token in pages).
        lab = httpx.get(f"{server.url}{nb['url']}", headers=kernel.headers, timeout=30)
        assert lab.status_code == 200 and "JupyterLab" in lab.text and jupyter_token not in lab.text
        system_logs = [p.read_text() for p in (server.data_dir / "logs").glob("*/system.log")]
        assert any(f"started on a warm process pid {warm_pid}" in t for t in system_logs)
        # The pool is refilled with a new process; a stopped server's process is gone.
        wait_for(lambda: set(_parked(server)) - {parked_dir}, 120, "a refill")
        refilled = [i for d, i in _parked(server).items() if d != parked_dir]
        stop_and_wait(server, pid)
        assert not is_same_process(warm_pid, info["start_time"])
    finally:
        try:
            stop_all(server)
        finally:
            server.stop()
            left = _parked(server)
            _kill_parked(server)
    # A server that shuts down takes its warm processes with it.
    assert not left
    assert not is_same_process(refilled[0]["pid"], refilled[0]["start_time"])


def test_shut_down_from_jupyterlab_is_a_stop_not_a_failure(atoll: RunningServer) -> None:
    """File › Shut Down posts /api/shutdown: JupyterLab exits 0, on purpose (issue 17, item 8)."""
    pid = new_project(atoll, "nb-shutdown")["id"]
    open_and_wait(atoll, pid)
    headers = {"Authorization": f"Bearer {atoll.admin_token}"}
    r = httpx.post(f"{atoll.url}/nb/{pid}/api/shutdown", headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    nb = wait_state(atoll, pid, ("STOPPED", "FAILED"), 60)
    assert nb["state"] == "STOPPED", nb
    assert nb["detail"] == "shut down from JupyterLab (File › Shut Down)"


def _ready_env(server: RunningServer, project_id: str, body: dict[str, Any]) -> dict[str, Any]:
    with server.api() as api:
        r = api.post(f"/projects/{project_id}/environments", json=body)
        assert r.status_code == 201, r.text
        env_id = r.json()["id"]
        deadline = time.monotonic() + 300
        while (env := api.get(f"/environments/{env_id}").json())["status"] not in ("READY", "FAILED"):
            assert time.monotonic() < deadline, env
            time.sleep(0.3)
    assert env["status"] == "READY", env
    return dict(env)


def test_a_notebook_runs_in_the_project_s_environment(atoll: RunningServer) -> None:
    """The project's setting picks the environment its JupyterLab runs in (issue 17, item 7)."""
    pid = new_project(atoll, "nb-own-env")["id"]
    _ready_env(atoll, pid, {"name": "cows", "base": "datascience", "requirements": ["cowsay==6.1"]})
    _ready_env(atoll, pid, {"name": "bare", "requirements": ["cowsay==6.1"]})
    with atoll.api() as api:
        r = api.patch(f"/projects/{pid}", json={"settings": {"defaultEnvironment": "bare"}})
        assert r.status_code == 200, r.text
        assert api.post(f"/projects/{pid}/notebook/open", json={}).status_code == 202
    nb = wait_state(atoll, pid, ("FAILED",), 60)
    assert "has no JupyterLab" in nb["detail"] and "--base datascience" in nb["detail"], nb
    with atoll.api() as api:
        api.patch(f"/projects/{pid}", json={"settings": {"defaultEnvironment": "cows"}}).raise_for_status()
    open_and_wait(atoll, pid)
    kernel = Kernel(atoll, pid)
    assert kernel.run("import cowsay, pandas; print(cowsay.__name__)").strip() == "cowsay"
    kernel.close()
    stop_and_wait(atoll, pid)


def test_a_server_the_notebook_starts_is_reached_through_the_gateway(atoll: RunningServer) -> None:
    """jupyter-server-proxy: what a kernel serves (TensorBoard's %tensorboard) shows in the
    browser through /nb/<project>/proxy/<port>/, behind Atoll's sign-in (issue 17, item 4)."""
    pid = new_project(atoll, "nb-proxy")["id"]
    open_and_wait(atoll, pid)
    try:
        kernel = Kernel(atoll, pid)
        code = "\n".join(
            [
                "import http.server, os, socket, threading",
                "s = socket.socket(); s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]; s.close()",
                "srv = http.server.HTTPServer(('127.0.0.1', port), http.server.SimpleHTTPRequestHandler)",
                "threading.Thread(target=srv.serve_forever, daemon=True).start()",
                "print(port, os.environ['TENSORBOARD_PROXY_URL'])",
            ]
        )
        port, proxy_url = kernel.run(code).split()
        assert proxy_url == f"/nb/{pid}/proxy/%PORT%/"
        headers = {"Authorization": f"Bearer {atoll.admin_token}"}
        r = httpx.get(f"{atoll.url}{proxy_url.replace('%PORT%', port)}", headers=headers, timeout=30)
        assert r.status_code == 200 and "Directory listing" in r.text, r.text[:300]
        assert (
            httpx.get(f"{atoll.url}/nb/{pid}/proxy/{port}/", timeout=30).status_code == 401
        )  # signed in only
        kernel.close()
    finally:
        stop_and_wait(atoll, pid)
