"""A real app with its controllers running (short tick) over a real database, and helpers to
run jobs through the REST API as the CLI does: create, upload what is missing, execute, wait."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from atoll.app import create_app
from tests.api.conftest import make_settings
from tests.support.server import ADMIN_PASSWORD

V = "/api/v1"
TERMINAL = ("SUCCESS", "ERROR", "CANCELLED")


@pytest.fixture(scope="module")
def app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    settings = make_settings(tmp_path_factory.mktemp("data"), database_url, controller_tick_s=0.2)
    application = create_app(settings)
    yield application
    application.state.db.dispose()


@pytest.fixture(scope="module")
def api(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:  # runs the lifespan: controllers tick in the background
        tok = c.post(f"{V}/auth/tokens", json={"username": "admin", "password": ADMIN_PASSWORD}).json()[
            "token"
        ]
        c.headers["Authorization"] = f"Bearer {tok}"
        yield c


@pytest.fixture(scope="module")
def project(api: TestClient) -> dict[str, Any]:
    org = api.get(f"{V}/organizations").json()["items"][0]["id"]
    com = api.post(f"{V}/communities", json={"organizationId": org, "name": "jobs-com"}).json()
    return dict(api.post(f"{V}/projects", json={"communityId": com["id"], "name": "jobs-prj"}).json())


def file_ref(path: str, data: bytes, var: str | None = None) -> dict[str, Any]:
    return {"path": path, "var": var, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


Submit = Callable[..., dict[str, Any]]


@pytest.fixture
def submit(api: TestClient, project: dict[str, Any]) -> Submit:
    """Create a job, upload its missing files, execute it; returns the job."""

    def run(
        config: str, files: dict[str, tuple[bytes, str | None]] | None = None, **extra: Any
    ) -> dict[str, Any]:
        files = files or {}
        inputs = [file_ref(path, data, var) for path, (data, var) in files.items()]
        r = api.post(f"{V}/projects/{project['id']}/jobs", json={"config": config, "inputs": inputs, **extra})
        assert r.status_code == 201, r.text
        created = r.json()
        by_sha = {hashlib.sha256(d).hexdigest(): d for d, _ in files.values()}
        for sha in created["missingFiles"]:
            up = api.put(f"{V}/projects/{project['id']}/blobs/{sha}", content=by_sha[sha])
            assert up.status_code == 204, up.text
        r = api.post(f"{V}/jobs/{created['job']['id']}/execute")
        assert r.status_code == 200, r.text
        return dict(r.json())

    return run


def wait_for(
    api: TestClient, job_id: str, states: tuple[str, ...] = TERMINAL, timeout: float = 120
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.get(f"{V}/jobs/{job_id}").json()
        if job["status"] in states:
            return dict(job)
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not reach {states}: {api.get(f'{V}/jobs/{job_id}').json()}")


def read_log(api: TestClient, job_id: str, stream: str = "stdout") -> str:
    out, offset = "", 0
    while True:
        chunk = api.get(f"{V}/jobs/{job_id}/logs", params={"stream": stream, "offset": offset}).json()
        out += chunk["data"]
        if not chunk["data"]:
            return out
        offset = chunk["offset"]


def write(tmp: Path, name: str, text: str) -> Path:
    p = tmp / name
    p.write_text(text)
    return p
