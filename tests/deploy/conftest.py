"""A real `atoll up` (API, controllers and the HAProxy gateway) serving nodes and aliases."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.notebooks.conftest import ENV_CACHE, new_project
from tests.support.server import RunningServer, start_server
from tests.support.tenants import stop_workloads

FAST = {
    "ATOLL_ENVS_DIR": str(ENV_CACHE),
    "ATOLL_CONTROLLER_TICK_S": "0.2",
    "ATOLL_POOL_CPUS": "16",
    "ATOLL_POOL_MEMORY_GB": "32",
}
# A tiny HTTP service as a command node: answers which instance it is, /health, and /slow.
SERVICE = r"""
import http.server, json, os, sys, time
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def _send(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        if self.path.startswith("/slow"):
            time.sleep(0.3)
        me = os.environ["ATOLL_INSTANCE_ID"]
        self._send(200, {"version": os.environ.get("VERSION", ""), "path": self.path,
                         "instance": me, "host": os.environ["HOST"],
                         "auth": self.headers.get("authorization")})
    def do_POST(self):
        n = int(self.headers.get("content-length", 0))
        data = self.rfile.read(n)
        self._send(200, {"version": os.environ.get("VERSION", ""), "len": len(data)})
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer.daemon_threads = True
http.server.ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), H).serve_forever()
"""


def service_command() -> list[str]:
    return [sys.executable, "-c", SERVICE]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start_server(tmp_path_factory.mktemp("deploy") / "data", extra_env=FAST)
    try:
        yield srv
    finally:
        srv.stop()
        stop_workloads(srv.data_dir / "runtime")  # nodes' instances outlive `atoll up` by design


@pytest.fixture(scope="module")
def project(server: RunningServer) -> dict[str, Any]:
    return new_project(server, "deploy")


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(every)


def create_node(server: RunningServer, project_id: str, name: str, **body: Any) -> dict[str, Any]:
    with server.api() as api:
        r = api.post(f"/projects/{project_id}/nodes", json={"name": name, **body})
        assert r.status_code == 201, r.text
        return dict(r.json())


def node(server: RunningServer, project_id: str, ref: str) -> dict[str, Any]:
    with server.api() as api:
        r = api.get(f"/projects/{project_id}/nodes/{ref}")
        assert r.status_code == 200, r.text
        return dict(r.json())


def wait_healthy(
    server: RunningServer, project_id: str, ref: str, count: int = 1, timeout: float = 120
) -> dict:
    def check() -> dict[str, Any] | None:
        n = node(server, project_id, ref)
        healthy = [i for i in n["instances"] if i["status"] == "Healthy"]
        return n if n["status"] == "Healthy" and len(healthy) >= count else None

    try:
        return dict(wait_for(f"node {ref} healthy", check, timeout))
    except BaseException:
        print(node(server, project_id, ref), server.log()[-3000:])
        raise


def set_alias(
    server: RunningServer, project_id: str, name: str, weights: dict[str, int], *, create: bool = False
) -> None:
    """Create an alias (``create``) or change its nodes: ``weights`` maps node ids to shares."""
    body = {"nodes": [{"nodeId": k, "weight": v} for k, v in weights.items()]}
    with server.api() as api:
        if create:
            r = api.post(f"/projects/{project_id}/aliases", json={"name": name, **body})
        else:
            r = api.patch(f"/projects/{project_id}/aliases/{name}", json=body)
        assert r.status_code == (201 if create else 200), r.text


def gateway_ready(
    server: RunningServer, alias: str, token: str, timeout: float = 10, path: str = "/"
) -> None:
    """The gateway follows the store within a second: wait until it routes the alias."""

    def check() -> bool:
        r = httpx.get(
            server.gateway_url + path, headers={"x-node-alias": alias, "authorization": f"Bearer {token}"}
        )
        return r.status_code == 200

    wait_for(f"the gateway to route {alias}", check, timeout)


HEALTH = {"path": "/health", "intervalS": 0.5, "timeoutS": 1, "healthyThreshold": 1, "unhealthyThreshold": 1}
