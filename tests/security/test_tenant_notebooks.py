"""A notebook kernel of project B as the attacker (issue 14, findings 4 and 11): on a warm
JupyterLab process (the pool's path into a workload differs from a fresh start), as its own uid,
in its project's network, with its own /tmp and /proc; and a notebook run by API whose executed
copy keeps no secret value."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from atoll.runtime.local.netns import unavailable as netns_unavailable
from tests.deploy.conftest import wait_for
from tests.notebooks.conftest import FAST, Kernel, new_project, open_and_wait, stop_and_wait
from tests.support.server import RunningServer
from tests.support.tenants import job_config, root_server, submit

pytestmark = pytest.mark.skipif(
    bool(netns_unavailable()), reason=f"per-project users and networks need root: {netns_unavailable()}"
)
SECRET_VALUE = "nb-s3cr3t-4f9a1c7e2b"
PORT = 18766


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    with root_server("atoll-nbsec-", {**FAST, "ATOLL_NOTEBOOK_WARM_POOL": "1"}) as server:
        yield server


def _job(server: RunningServer, project: str, cmd: str) -> str:
    with server.api() as api:
        return submit(api, project, job_config(cmd))


def test_a_kernel_sees_only_its_project(srv: RunningServer) -> None:
    a = new_project(srv, "nbsec-a")["id"]
    b = new_project(srv, "nbsec-b")["id"]
    serve = f'exec /usr/bin/python3 -m http.server --bind "$HOST" {PORT}'
    listener = _job(srv, a, f'echo "HOST=$HOST"; echo a-tmp > /tmp/a-file; {serve}')
    with srv.api() as api:

        def printed_host() -> str:
            text = str(api.get(f"/jobs/{listener}/logs").json()["data"])
            return text if "HOST=" in text else ""

        out = wait_for("A's server", printed_host, 90)
    address = str(out).split("HOST=")[1].split()[0]
    try:
        open_and_wait(srv, b)
        kernel = Kernel(srv, b)
        code = "\n".join(
            [
                "import os, socket",
                "print('uid', os.getuid())",
                "procs = [p for p in os.listdir('/proc') if p.isdigit()]",
                "print('uids', sorted({os.stat(f'/proc/{p}').st_uid for p in procs}))",
                "print('tmp', os.path.exists('/tmp/a-file'))",
                f"for target in [({address!r}, {PORT}), ('127.0.0.1', {PORT})]:",
                "    try:",
                "        socket.create_connection(target, timeout=3).close()",
                "        print('reach', target[0], 'open')",
                "    except OSError:",
                "        print('reach', target[0], 'closed')",
                "print('umask', oct(os.umask(0o77)))",
            ]
        )
        printed = kernel.run(code).strip().splitlines()
        kernel.close()
        lines = dict(line.split(" ", 1) for line in printed if not line.startswith("reach "))
        uid = lines["uid"]
        assert lines["uids"] == f"[{uid}]", printed  # its own project's processes only
        assert lines["tmp"] == "False", printed
        assert lines["umask"] == "0o77", printed
        # A's server is out of reach at A's address and on B's own loopback.
        assert [x for x in printed if x.startswith("reach ")] == [
            f"reach {address} closed",
            "reach 127.0.0.1 closed",
        ], printed
    finally:
        with srv.api() as api:
            api.post(f"/jobs/{listener}/cancel")


def _notebook(*cells: str) -> str:
    return json.dumps(
        {
            "cells": [
                {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": c}
                for c in cells
            ],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
    )


def test_an_executed_notebook_keeps_no_secret_value(srv: RunningServer) -> None:
    pid = new_project(srv, "nbsec-run")["id"]
    with srv.api() as api:
        r = api.post(f"/projects/{pid}/secrets", json={"name": "TOKEN", "value": SECRET_VALUE})
        assert r.status_code == 201, r.text
    job = _job(srv, pid, "true")  # makes the project's dirs as its own user
    home = srv.data_dir / "projects" / pid / "home"
    wait_for("the project's home", home.is_dir, 60)
    (home / "leak.ipynb").write_text(_notebook("import os\nprint('token:', os.environ['TOKEN'])\nx = 1"))
    (home / "leak.ipynb").chmod(0o644)
    with srv.api() as api:
        op = api.post(
            f"/projects/{pid}:execute", json={"notebookId": "leak.ipynb", "outputVariableNames": ["x"]}
        )
        assert op.status_code == 202, op.text
        op_id = op.json()["id"]

        def done() -> dict | None:
            got = api.get(f"/projects/{pid}/executions/{op_id}")
            return got.json() if got.status_code == 200 and got.json()["done"] else None

        result = wait_for("the notebook run", done, 180)
    assert result["error"] is None, result
    [executed] = list((srv.data_dir / "projects" / pid / "runs").glob("*/executed.ipynb"))
    text = executed.read_text()
    assert "token: ***" in text and SECRET_VALUE not in text
    assert job


def test_the_jupyter_page_is_served_through_the_projects_network(srv: RunningServer) -> None:
    """The notebook proxy reaches JupyterLab at the project's own address, after a restart too:
    the config Atoll writes for the second start lands in a dir the project's user owns."""
    pid = new_project(srv, "nbsec-proxy")["id"]
    for _ in range(2):
        nb = open_and_wait(srv, pid)
        r = httpx.get(
            f"{srv.url}{nb['url']}", headers={"Authorization": f"Bearer {srv.admin_token}"}, timeout=30
        )
        assert r.status_code == 200 and "JupyterLab" in r.text
        kernel = Kernel(srv, pid)
        assert kernel.run("print(6 * 7)").strip() == "42"
        kernel.close()
        stop_and_wait(srv, pid)
