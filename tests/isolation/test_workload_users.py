"""With a root server and a data dir others may traverse, each project's workloads run as their
own uid: they cannot read Atoll's database or keys, nor another project's job files."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from atoll.app import create_app
from atoll.runtime.local.netns import ProjectNetworks
from tests.api.conftest import make_settings
from tests.support.leaks import register_root
from tests.support.server import ADMIN_PASSWORD

V = "/api/v1"
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs a root server")


@pytest.fixture(scope="module")
def api() -> Iterator[TestClient]:
    root = Path(tempfile.mkdtemp(prefix="atoll-iso-", dir="/tmp"))
    register_root(root)
    root.chmod(0o755)  # pytest's own tmp dirs are root-only: others could not reach their jobs
    app = create_app(
        make_settings(root / "data", f"sqlite:///{root / 'data' / 'atoll.db'}", controller_tick_s=0.2)
    )
    try:
        assert app.state.services.separate_users
        with TestClient(app) as c:
            tok = c.post(f"{V}/auth/tokens", json={"username": "admin", "password": ADMIN_PASSWORD}).json()[
                "token"
            ]
            c.headers["Authorization"] = f"Bearer {tok}"
            c.app_root = root  # type: ignore[attr-defined]
            yield c
    finally:
        app.state.db.dispose()
        ProjectNetworks(root / "data" / "runtime").remove_all()  # made for its projects, if it could
        shutil.rmtree(root, ignore_errors=True)


def _project(api: TestClient, name: str) -> str:
    org = api.get(f"{V}/organizations").json()["items"][0]["id"]
    coms = api.get(f"{V}/communities").json()["items"]
    com = (
        coms[0]["id"]
        if coms
        else api.post(f"{V}/communities", json={"organizationId": org, "name": "iso"}).json()["id"]
    )
    return str(api.post(f"{V}/projects", json={"communityId": com, "name": name}).json()["id"])


def _run(api: TestClient, project: str, cmd: str) -> tuple[dict[str, Any], str]:
    cfg = f"cmd: {cmd}\ncloud-instance-types: [s1.1]\n"
    job = api.post(f"{V}/projects/{project}/jobs", json={"config": cfg}).json()["job"]
    api.post(f"{V}/jobs/{job['id']}/execute")
    deadline = time.monotonic() + 60
    while (j := api.get(f"{V}/jobs/{job['id']}").json())["status"] not in ("SUCCESS", "ERROR", "CANCELLED"):
        assert time.monotonic() < deadline, j
        time.sleep(0.2)
    out = (
        api.get(f"{V}/jobs/{job['id']}/logs").json()["data"]
        + api.get(f"{V}/jobs/{job['id']}/logs", params={"stream": "stderr"}).json()["data"]
    )
    return j, str(out)


def test_workloads_cannot_read_atoll_or_other_projects(api: TestClient) -> None:
    data = api.app_root / "data"  # type: ignore[attr-defined]
    a, b = _project(api, "iso-a"), _project(api, "iso-b")
    job_a, out = _run(api, a, "id -u; echo private > mine.txt; sleep 0.1")
    assert job_a["status"] == "SUCCESS", (job_a, out)
    uid = int(out.split()[0])
    assert uid != 0 and uid >= 200000
    for target, how in [
        ("secret.key", "cat"),
        ("atoll.db", "cat"),
        ("logs", "ls"),
        ("blobs", "ls"),
        ("runtime", "ls"),
        ("jobs", "ls"),
    ]:
        job, out = _run(api, b, f"{how} {data / target}")
        assert job["status"] == "ERROR", (target, out)
        assert "Permission denied" in out, (target, out)
    job, out = _run(api, b, f"cat {data / 'jobs' / job_a['id'] / 'work' / 'mine.txt'}")
    assert job["status"] == "ERROR" and "Permission denied" in out, out
    job, out = _run(api, b, "id -u")
    assert int(out.split()[0]) not in (0, uid)


def test_python_environments_run_as_project_users(api: TestClient) -> None:
    project = _project(api, "iso-py")
    # env.python is layered on the project's environment (issue 17 item 7): the job's six, and
    # the default built-in environment's pandas beside it.
    cfg = "cmd: python -c 'import os, six, pandas; print(os.getuid() != 0, six.__file__, pandas.__file__)'\n"
    cfg += "env: {python: auto}\n"
    cfg += "cloud-instance-types: [s1.1]\n"
    body = {"config": cfg, "python": {"version": "3.11", "requirements": ["six==1.16.0"]}}
    job = api.post(f"{V}/projects/{project}/jobs", json=body).json()["job"]
    api.post(f"{V}/jobs/{job['id']}/execute")
    deadline = time.monotonic() + 120
    while (j := api.get(f"{V}/jobs/{job['id']}").json())["status"] not in ("SUCCESS", "ERROR", "CANCELLED"):
        assert time.monotonic() < deadline, j
        time.sleep(0.3)
    out = api.get(f"{V}/jobs/{j['id']}/logs").json()["data"]
    err = api.get(f"{V}/jobs/{j['id']}/logs", params={"stream": "stderr"}).json()["data"]
    assert j["status"] == "SUCCESS", (j, out, err)
    assert out.startswith("True ") and "/envs/" in out
    six_file, pandas_file = out.split()[1:3]
    assert six_file.split("/lib/")[0] != pandas_file.split("/lib/")[0]  # from two environments
    log = api.get(f"{V}/jobs/{j['id']}/logs", params={"stream": "system"}).json()["data"]
    assert "layered on the project's environment: datascience" in log, log


def test_datasets_are_read_only_and_only_their_project_reads_them(api: TestClient) -> None:
    data = api.app_root / "data"  # type: ignore[attr-defined]
    a, b = _project(api, "iso-ds-a"), _project(api, "iso-ds-b")
    cfg = "cmd: echo secret > ${OUT}/a.txt\noutput-datasets:\n  - {name: d, var: OUT, size: 1Gb}\n"
    job = api.post(f"{V}/projects/{a}/jobs", json={"config": cfg + "cloud-instance-types: [s1.1]\n"}).json()
    api.post(f"{V}/jobs/{job['job']['id']}/execute")
    deadline = time.monotonic() + 60
    while (j := api.get(f"{V}/jobs/{job['job']['id']}").json())["status"] not in ("SUCCESS", "ERROR"):
        assert time.monotonic() < deadline, j
        time.sleep(0.2)
    ds = j["outputDatasets"][0]["id"]
    assert ds, j
    mount = f"datasets:\n  - {ds}: {{var: D}}\ncloud-instance-types: [s1.1]\n"

    def run_mounted(cmd: str) -> tuple[dict[str, Any], str]:
        body = {"config": f"cmd: {cmd}\n" + mount}
        created = api.post(f"{V}/projects/{a}/jobs", json=body).json()["job"]
        api.post(f"{V}/jobs/{created['id']}/execute")
        end = time.monotonic() + 60
        while (k := api.get(f"{V}/jobs/{created['id']}").json())["status"] not in ("SUCCESS", "ERROR"):
            assert time.monotonic() < end, k
            time.sleep(0.2)
        logs = [
            api.get(f"{V}/jobs/{k['id']}/logs", params={"stream": s}).json()["data"]
            for s in ("stdout", "stderr")
        ]
        return k, "".join(logs)

    job, out = run_mounted("cat ${D}/a.txt")
    assert job["status"] == "SUCCESS" and out == "secret\n", (job, out)
    for cmd in ("echo x > ${D}/a.txt", "touch ${D}/new.txt", "rm ${D}/a.txt"):
        job, out = run_mounted(cmd)
        assert job["status"] == "ERROR" and "Permission denied" in out, (cmd, out)
    # Another project's workloads cannot read it, even knowing where it is.
    job, out = _run(api, b, f"cat {data / 'datasets' / ds / 'a.txt'}")
    assert job["status"] == "ERROR" and "Permission denied" in out, out
