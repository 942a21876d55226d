"""A node's endpoint settings through a real `atoll up` and its HAProxy data plane: checked and
merged by the API, a per-instance cap with a queue (429 with Retry-After when it is full), a
node scaled to zero that answers its first request, and an instance that fails its health
check while alive being replaced."""

from __future__ import annotations

import sys
import threading
from typing import Any

import httpx

from atoll.dataplane.admin import Admin
from atoll.dataplane.proxy import parse_load
from tests.deploy.conftest import create_node, node, set_alias, wait_for, wait_healthy
from tests.support.postgres import free_port
from tests.support.server import RunningServer

# /slow?s=N answers after N seconds; /sicken makes /health answer 500 until the process ends.
SERVICE = r"""
import http.server, os, time, urllib.parse
sick = []
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        if url.path == "/slow":
            time.sleep(float(urllib.parse.parse_qs(url.query).get("s", ["1"])[0]))
        if url.path == "/sicken":
            sick.append(1)
        code = 500 if url.path == "/health" and sick else 200
        body = os.environ["ATOLL_INSTANCE_ID"].encode()
        self.send_response(code)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer.daemon_threads = True
http.server.ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), H).serve_forever()
"""
COMMAND = [sys.executable, "-c", SERVICE]
HEALTH = {"path": "/health", "intervalS": 0.5, "timeoutS": 1, "healthyThreshold": 1, "unhealthyThreshold": 1}


def _call(server: RunningServer, alias: str, path: str = "/", timeout: float = 60) -> httpx.Response:
    headers = {"x-node-alias": alias, "authorization": f"Bearer {server.admin_token}"}
    return httpx.get(server.gateway_url + path, headers=headers, timeout=timeout)


def _in_flight(server: RunningServer, node_id: str) -> int:
    admin = Admin(server.data_dir / "gateway")
    load = parse_load(admin.ask("show stat -1 2 -1"), admin.ask("atoll held")).get(node_id)
    return load.active if load else 0


def test_endpoint_settings_are_checked_and_kept(server: RunningServer, project: dict[str, Any]) -> None:
    pid = project["id"]
    with server.api() as api:
        for bad, field in (
            ({"timeoutS": 0}, "endpoint.timeoutS"),
            ({"type": "SMTP"}, "endpoint.type"),
            ({"queueLength": -1}, "endpoint.queueLength"),
            ({"maxBodyMb": 2048}, "endpoint.maxBodyMb"),
            ({"turbo": True}, "endpoint.turbo"),
        ):
            body = {"name": "bad", "command": COMMAND, "endpoint": bad}
            r = api.post(f"/projects/{pid}/nodes", json=body)
            assert r.status_code == 422 and field in r.text, r.text
        assert api.get(f"/projects/{pid}/nodes").json() == []  # nothing made
    n = create_node(
        server,
        pid,
        "capped",
        command=COMMAND,
        healthCheck=HEALTH,
        endpoint={"type": "http2", "maxConcurrency": 2},
    )
    assert n["spec"]["endpoint"] == {
        "type": "HTTP2",
        "timeoutS": 600,
        "idleTimeoutS": 3600,
        "maxConcurrency": 2,
        "queueLength": 100,
        "queueTimeoutS": 30,
        "maxBodyMb": 16,
    }
    with server.api() as api:
        r = api.patch(
            f"/projects/{pid}/nodes/capped", json={"endpoint": {"queueTimeoutS": 5, "type": "HTTP"}}
        )
        assert r.status_code == 200, r.text
    changed = r.json()
    assert changed["spec"]["endpoint"]["maxConcurrency"] == 2  # one setting given, one changed
    assert changed["spec"]["endpoint"]["queueTimeoutS"] == 5
    assert changed["revision"] == n["revision"]  # the data plane's business: no rollout


def test_a_full_queue_answers_429(server: RunningServer, project: dict[str, Any]) -> None:
    pid = project["id"]
    n = create_node(
        server, pid, "one-at-a-time", command=COMMAND, healthCheck=HEALTH,
        endpoint={"maxConcurrency": 1, "queueLength": 0},
    )  # fmt: skip
    wait_healthy(server, pid, n["id"])
    set_alias(server, pid, "one-at-a-time", {n["id"]: 100}, create=True)
    wait_for("the alias routed", lambda: _call(server, "one-at-a-time").status_code == 200, 15)
    slow: list[httpx.Response] = []
    t = threading.Thread(target=lambda: slow.append(_call(server, "one-at-a-time", "/slow?s=3")))
    t.start()
    wait_for("the slow request on the instance", lambda: _in_flight(server, n["id"]) == 1, 10)
    refused = _call(server, "one-at-a-time")
    t.join(30)
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1", refused.text
    assert slow[0].status_code == 200
    # HAProxy's own answer is counted too (from its log, not its counters), by node and alias.
    auth = {"authorization": f"Bearer {server.admin_token}"}
    wanted = [
        f'node_http_codes_total{{code="429",node_id="{n["id"]}",node_name="one-at-a-time"}} 1.0',
        'alias_http_codes_total{alias_name="one-at-a-time",code="429"} 1.0',
    ]
    wait_for(
        "the 429 counted",
        lambda: all(w in httpx.get(server.gateway_url + "/metrics", headers=auth).text for w in wanted),
        10,
    )


def test_a_node_scaled_to_zero_answers_its_first_request(
    server: RunningServer, project: dict[str, Any]
) -> None:
    pid = project["id"]
    n = create_node(
        server, pid, "from-zero", command=COMMAND, healthCheck=HEALTH, minInstances=0, maxInstances=1,
        endpoint={"queueTimeoutS": 120},
    )  # fmt: skip
    set_alias(server, pid, "from-zero", {n["id"]: 100}, create=True)
    wait_for(
        "the alias known to the data plane",
        lambda: "from-zero" in (server.data_dir / "gateway" / "aliases.map").read_text(),
        15,
    )
    assert node(server, pid, n["id"])["instances"] == []
    # The request waits while the node's first instance starts, then is answered.
    r = _call(server, "from-zero", timeout=150)
    assert r.status_code == 200, r.text
    started = node(server, pid, n["id"])["instances"]
    assert [i["status"] for i in started] == ["Healthy"] and r.text == started[0]["id"]


def test_an_instance_failing_its_health_check_while_alive_is_replaced(
    server: RunningServer, project: dict[str, Any]
) -> None:
    pid = project["id"]
    n = create_node(server, pid, "sickly", command=COMMAND, healthCheck=HEALTH)
    first = wait_healthy(server, pid, n["id"])["instances"][0]
    set_alias(server, pid, "sickly", {n["id"]: 100}, create=True)
    wait_for("the alias routed", lambda: _call(server, "sickly").status_code == 200, 15)
    assert _call(server, "sickly", "/sicken").status_code == 200  # alive, but its checks fail

    def replaced() -> dict[str, Any] | None:
        inst = node(server, pid, n["id"])["instances"][0]
        return inst if inst["restarts"] == 1 and inst["status"] == "Healthy" else None

    inst = wait_for("the sick instance replaced", replaced, timeout=90, every=0.5)
    assert inst["id"] == first["id"] and inst["workloadId"] != first["workloadId"]
    assert _call(server, "sickly").status_code == 200


def test_a_health_check_port_of_its_own(server: RunningServer, project: dict[str, Any]) -> None:
    """The service answers /health with 500 on its serving port and 200 on the health-check port
    the node names: the node turns Healthy only if that port is the one checked."""
    pid = project["id"]
    health_port = free_port()
    two_ports = (
        "import http.server, os, threading\n"
        "def handler(code):\n"
        "    class H(http.server.BaseHTTPRequestHandler):\n"
        "        def do_GET(self):\n"
        "            self.send_response(code); self.send_header('content-length', '0'); self.end_headers()\n"
        "        def log_message(self, *a): pass\n"
        "    return H\n"
        "E = os.environ\n"
        "aside = http.server.HTTPServer((E['HOST'], int(E['CHECK_PORT'])), handler(200))\n"
        "threading.Thread(target=aside.serve_forever, daemon=True).start()\n"
        "http.server.HTTPServer((E['HOST'], int(E['PORT'])), handler(500)).serve_forever()\n"
    )
    n = create_node(
        server, pid, "checked-aside", command=[sys.executable, "-c", two_ports],
        env={"CHECK_PORT": str(health_port)}, healthCheck={**HEALTH, "port": health_port},
    )  # fmt: skip
    wait_healthy(server, pid, n["id"])


GRPC_SERVICE = r"""
import os, grpc
from concurrent import futures
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
server = grpc.server(futures.ThreadPoolExecutor(4))
checks = health.HealthServicer()
checks.set("atoll.Demo", health_pb2.HealthCheckResponse.SERVING)
checks.set("atoll.Down", health_pb2.HealthCheckResponse.NOT_SERVING)
health_pb2_grpc.add_HealthServicer_to_server(checks, server)
server.add_insecure_port(os.environ["HOST"] + ":" + os.environ["PORT"])
server.start()
server.wait_for_termination()
"""


def test_a_grpc_service_checked_by_grpc_and_called_through_an_alias(
    server: RunningServer, project: dict[str, Any]
) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    pid = project["id"]
    with server.api() as api:
        bad = {"name": "bad", "command": COMMAND, "healthCheck": {"type": "TCP"}}
        r = api.post(f"/projects/{pid}/nodes", json=bad)
        assert r.status_code == 422 and "healthCheck.type" in r.text, r.text
    check = {**HEALTH, "type": "GRPC", "service": "atoll.Demo"}
    n = create_node(
        server, pid, "grpc-svc", command=[sys.executable, "-c", GRPC_SERVICE], healthCheck=check,
        endpoint={"type": "GRPC"},
    )  # fmt: skip
    wait_healthy(server, pid, n["id"])  # only a gRPC check can pass: the service speaks no HTTP/1
    set_alias(server, pid, "grpc-svc", {n["id"]: 100}, create=True)
    metadata = (("x-node-alias", "grpc-svc"), ("authorization", f"Bearer {server.admin_token}"))
    with grpc.insecure_channel(server.gateway_url.removeprefix("http://")) as channel:
        stub = health_pb2_grpc.HealthStub(channel)

        def status(service: str) -> int | None:
            try:
                request = health_pb2.HealthCheckRequest(service=service)
                return int(stub.Check(request, metadata=metadata, timeout=5).status)
            except grpc.RpcError:
                return None

        wait_for(
            "gRPC through the alias",
            lambda: status("atoll.Demo") == health_pb2.HealthCheckResponse.SERVING,
            15,
        )
        assert status("atoll.Down") == health_pb2.HealthCheckResponse.NOT_SERVING
    with server.api() as api:  # a service reported down takes the instance out of balancing
        r = api.patch(f"/projects/{pid}/nodes/grpc-svc", json={"healthCheck": {"service": "atoll.Down"}})
        assert r.status_code == 200, r.text
    wait_for(
        "the instance Unhealthy",
        lambda: node(server, pid, n["id"])["instances"][0]["status"] == "Unhealthy",
        timeout=30,
    )
    assert "NOT_SERVING" in node(server, pid, n["id"])["instances"][0]["detail"]
