"""A real `atoll up` with its controllers, real JupyterLab servers behind its gateway, and a
small Jupyter-protocol client that runs cells through the gateway's WebSocket as a browser does."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.support.server import ENV_CACHE, RunningServer, start_server

FAST = {
    "ATOLL_ENVS_DIR": str(ENV_CACHE),
    "ATOLL_CONTROLLER_TICK_S": "0.2",
    "ATOLL_NOTEBOOK_CHECK_S": "0.5",
    "ATOLL_POOL_CPUS": "8",
    "ATOLL_POOL_MEMORY_GB": "16",
    # staleExecTimeoutMode ONE_HOUR becomes 3 s here (THREE_HOURS: 9 s); NO_TIMEOUT stays off.
    "ATOLL_NOTEBOOK_TIME_SCALE": str(3 / 3600),
}
LIVE = ("PREPARING", "QUEUED", "STARTING", "READY", "STOPPING")


def boot(tmp: Path, **env: str) -> RunningServer:
    return start_server(tmp / "data", extra_env={**FAST, **env})


def new_project(server: RunningServer, name: str, **settings: Any) -> dict[str, Any]:
    with server.api() as api:
        org = api.get("/organizations").json()["items"][0]["id"]
        com = api.post("/communities", json={"organizationId": org, "name": f"{name}-com"})
        assert com.status_code == 201, com.text
        body = {
            "communityId": com.json()["id"],
            "name": name,
            "settings": {"defaultConfiguration": "s1.1", **settings},
        }
        r = api.post("/projects", json=body)
        assert r.status_code == 201, r.text
        return dict(r.json())


def open_and_wait(
    server: RunningServer, project_id: str, token: str | None = None, timeout: float = 180
) -> dict[str, Any]:
    with server.api(token) as api:
        r = api.post(f"/projects/{project_id}/notebook/open", json={})
        assert r.status_code == 202, r.text
        return wait_state(server, project_id, ("READY",), timeout, token)


def wait_state(
    server: RunningServer,
    project_id: str,
    states: tuple[str, ...],
    timeout: float = 120,
    token: str | None = None,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with server.api(token) as api:
        while True:
            nb = api.get(f"/projects/{project_id}/notebook").json()
            if nb["state"] in states:
                return dict(nb)
            if nb["state"] == "FAILED" and "FAILED" not in states:
                pytest.fail(f"notebook server failed: {nb['detail']}\n{server.log()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"notebook server stayed {nb['state']} ({nb['detail']}), wanted {states}")
            time.sleep(0.2)


def stop_and_wait(server: RunningServer, project_id: str) -> dict[str, Any]:
    with server.api() as api:
        r = api.post(f"/projects/{project_id}/notebook/stop")
        assert r.status_code == 202, r.text
    return wait_state(server, project_id, ("STOPPED", "FAILED"), 60)


def stop_all(server: RunningServer) -> None:
    """Stop every live notebook server, so no JupyterLab outlives the test's Atoll."""
    if server.proc.poll() is not None:
        return
    with server.api() as api:
        for p in api.get("/projects", params={"pageSize": 1000}).json()["items"]:
            if api.get(f"/projects/{p['id']}/notebook").json()["state"] in LIVE:
                api.post(f"/projects/{p['id']}/notebook/stop")
                wait_state(server, p["id"], ("STOPPED", "FAILED"), 60)


@pytest.fixture
def atoll(tmp_path: Path) -> Iterator[RunningServer]:
    server = boot(tmp_path)
    try:
        yield server
    finally:
        try:
            stop_all(server)
        finally:
            server.stop()


class Kernel:
    """One kernel of a project's JupyterLab, driven through Atoll's gateway (HTTP + WebSocket)."""

    def __init__(
        self, server: RunningServer, project_id: str, token: str | None = None, kernel_id: str | None = None
    ):
        self.base = f"{server.url}/nb/{project_id}"
        self.headers = {"Authorization": f"Bearer {token or server.admin_token}"}
        if kernel_id is None:
            r = httpx.post(
                f"{self.base}/api/kernels", json={"name": "python3"}, headers=self.headers, timeout=60
            )
            assert r.status_code == 201, r.text
            kernel_id = r.json()["id"]
        self.id = kernel_id
        self.session = uuid.uuid4().hex
        self.ws: ClientConnection | None = None
        self._stack = contextlib.ExitStack()

    def connect(self) -> ClientConnection:
        if self.ws is None:
            url = (
                self.base.replace("http://", "ws://")
                + f"/api/kernels/{self.id}/channels?session_id={self.session}"
            )
            self.ws = self._stack.enter_context(
                connect(url, additional_headers=self.headers, open_timeout=30, max_size=None)
            )
        return self.ws

    def close(self) -> None:
        self._stack.close()
        self.ws = None

    def send(self, code: str) -> str:
        msg_id = uuid.uuid4().hex
        msg = {
            "header": {
                "msg_id": msg_id,
                "msg_type": "execute_request",
                "username": "test",
                "session": self.session,
                "date": "",
                "version": "5.3",
            },
            "parent_header": {},
            "metadata": {},
            "content": {
                "code": code,
                "silent": False,
                "store_history": True,
                "user_expressions": {},
                "allow_stdin": False,
                "stop_on_error": True,
            },
            "channel": "shell",
            "buffers": [],
        }
        self.connect().send(json.dumps(msg))
        return msg_id

    def collect(self, msg_id: str, timeout: float = 120) -> tuple[str, dict[str, Any]]:
        """Output text of one execution and its execute_reply content."""
        ws = self.connect()
        out: list[str] = []
        reply: dict[str, Any] | None = None
        idle = False
        deadline = time.monotonic() + timeout
        while not (reply is not None and idle):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"no reply to {msg_id} within {timeout} s; output so far: {''.join(out)!r}"
                )
            raw = ws.recv(timeout=left)
            m = json.loads(raw)
            if m.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            t, c = m["msg_type"], m["content"]
            if t == "stream":
                out.append(c["text"])
            elif t in ("execute_result", "display_data"):
                out.append(c["data"].get("text/plain", "") + "\n")
            elif t == "error":
                out.append(f"{c['ename']}: {c['evalue']}\n")
            elif t == "execute_reply":
                reply = c
            elif t == "status" and c["execution_state"] == "idle":
                idle = True
        return "".join(out), reply

    def run(self, code: str, timeout: float = 120) -> str:
        return self.collect(self.send(code), timeout)[0]


# --- the notebook server's secret (issue 14): read from the store as the gateway does ----------


@dataclass
class ServerSecret:
    secret: str  # what the gateway sends upstream as `Authorization: token …`
    url: str  # the JupyterLab server itself, with its base_url, e.g. http://127.0.0.1:PORT/nb/<p>


def notebook_secret(server: RunningServer, project_id: str) -> ServerSecret:
    """The project's live (else last) notebook server's secret and direct URL, from the store."""
    from atoll.domain import notebooks as nbs
    from atoll.domain import workloads
    from atoll.domain.secrets import SecretBox
    from atoll.store.db import Database

    key = server.env.get("ATOLL_SECRET_KEY") or (server.data_dir / "secret.key").read_text().strip()
    db = Database(server.env.get("ATOLL_DATABASE_URL") or f"sqlite:///{server.data_dir / 'atoll.db'}")
    try:
        with db.session() as s:
            row = nbs.latest(s, project_id)
            assert row is not None, f"project {project_id} never had a notebook server"
            host = workloads.host_of(s, row.workload_id)
            url = f"http://{host}:{row.port}{nbs.base_path(project_id).rstrip('/')}"
            return ServerSecret(SecretBox(key.encode()).open(row.token), url)
    finally:
        db.engine.dispose()
