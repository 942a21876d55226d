"""A job of project B probes ports (issue 14, finding 4): before, every project's servers listened
on the one loopback, and B fetched A's private node at 127.0.0.1:<port>. Now each project has a
network namespace: B reaches its own project's servers, Atoll's API and gateway, and nothing of
A's or of the host's."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from atoll.runtime.local.netns import unavailable as netns_unavailable
from tests.support.server import RunningServer
from tests.support.tenants import finish, job_config, logs, new_project, root_server, submit

pytestmark = pytest.mark.skipif(
    bool(netns_unavailable()), reason=f"network namespaces unavailable: {netns_unavailable()}"
)
PORT = 18765  # inside a project's namespace every port is free
# bash's /dev/tcp: "open" when a TCP connection to host:port succeeds within 3 s.
PROBE = (
    "for t in {targets}; do h=$(echo $t | cut -d: -f1); p=$(echo $t | cut -d: -f2); "
    '(timeout 3 bash -c "exec 3<>/dev/tcp/$h/$p" 2>/dev/null && echo $t open) || echo $t closed; done'
)


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    with root_server("atoll-net-", {"ATOLL_POOL_CPUS": "8"}) as server:
        yield server


@pytest.fixture(scope="module")
def api(srv: RunningServer) -> Iterator[httpx.Client]:
    with srv.api() as c:
        yield c


def _submit(api: httpx.Client, project: str, cmd: str) -> str:
    return submit(api, project, job_config(cmd))


def _run(api: httpx.Client, project: str, cmd: str) -> str:
    job_id = _submit(api, project, cmd)
    j = finish(api, job_id)
    out = logs(api, job_id)
    assert j["status"] == "SUCCESS", (j["statusDetails"], out, logs(api, job_id, "system"))
    return out


def _probe(api: httpx.Client, project: str, targets: list[str]) -> dict[str, str]:
    out = _run(api, project, PROBE.format(targets=" ".join(targets)))
    return {line.split()[0]: line.split()[1] for line in out.splitlines() if line.strip()}


def _host_side(address: str) -> str:
    """The host's end of a project's veth (its .1 where the project has .2)."""
    net, last = address.rsplit(".", 1)
    return f"{net}.{int(last) - 1}"


@pytest.fixture(scope="module")
def a_listens(api: httpx.Client) -> Iterator[dict[str, Any]]:
    """Project A with a job serving HTTP on its address, as a node instance or notebook would."""
    a, b = new_project(api, "net-a"), new_project(api, "net-b")
    job = _submit(api, a, f'echo "HOST=$HOST"; exec /usr/bin/python3 -m http.server --bind "$HOST" {PORT}')
    deadline = time.monotonic() + 60
    while "HOST=" not in (out := logs(api, job)):
        assert time.monotonic() < deadline, logs(api, job, "system")
        time.sleep(0.2)
    address = out.split("HOST=")[1].split()[0]
    while True:  # the host (Atoll's gateway and proxy) reaches it at its address
        try:
            socket.create_connection((address, PORT), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, logs(api, job, "system")
            time.sleep(0.2)
    try:
        yield {"a": a, "b": b, "address": address, "job": job}
    finally:
        api.post(f"/jobs/{job}/cancel")


def test_a_project_has_an_address_of_its_own(a_listens: dict[str, Any]) -> None:
    assert a_listens["address"] != "127.0.0.1"


def test_another_project_cannot_connect_to_a_projects_servers(
    a_listens: dict[str, Any], api: httpx.Client
) -> None:
    address = a_listens["address"]
    gateway_side = _host_side(address)
    seen = _probe(api, a_listens["b"], [f"{address}:{PORT}", f"127.0.0.1:{PORT}", f"{gateway_side}:{PORT}"])
    assert set(seen.values()) == {"closed"}, seen
    # ...while the project's own jobs reach it.
    assert _probe(api, a_listens["a"], [f"{address}:{PORT}"]) == {f"{address}:{PORT}": "open"}


def test_atoll_internal_ports_are_out_of_reach(a_listens: dict[str, Any], api: httpx.Client) -> None:
    """Stand-ins for Atoll's internals (Ray, a database, an admin port): one on the host's
    loopback, one on every address of the host."""
    with (
        socket.create_server(("127.0.0.1", 0)) as loop_only,
        socket.create_server(("0.0.0.0", 0)) as wildcard,
    ):
        p1, p2 = loop_only.getsockname()[1], wildcard.getsockname()[1]
        address = a_listens["address"]
        host_side = address.rsplit(".", 1)[0] + "." + str(int(address.rsplit(".", 1)[1]) - 1)
        seen = _probe(
            api,
            a_listens["a"],
            [f"127.0.0.1:{p1}", f"127.0.0.1:{p2}", f"{host_side}:{p2}", f"{host_side}:{p1}"],
        )
    assert set(seen.values()) == {"closed"}, seen


def test_the_api_and_the_gateway_stay_reachable(
    srv: RunningServer, a_listens: dict[str, Any], api: httpx.Client
) -> None:
    api_port, gw_port = srv.env["ATOLL_PORT"], srv.env["ATOLL_GATEWAY_PORT"]
    out = _run(
        api,
        a_listens["b"],
        f"curl -s -o /dev/null -w '%{{http_code}}\\n' http://127.0.0.1:{api_port}/healthz; "
        f"curl -s -o /dev/null -w '%{{http_code}}\\n' http://127.0.0.1:{gw_port}/healthz",
    )
    assert out.split() == ["200", "200"], out


# A command node of project A: its instance listens on A's address (its $HOST).
NODE_SERVICE = (
    "import http.server, json, os\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        body = json.dumps({'host': os.environ['HOST']}).encode()\n"
    "        self.send_response(200)\n"
    "        self.send_header('content-length', str(len(body)))\n"
    "        self.end_headers()\n"
    "        self.wfile.write(body)\n"
    "    def log_message(self, *a): pass\n"
    "http.server.ThreadingHTTPServer((os.environ['HOST'], int(os.environ['PORT'])), H).serve_forever()\n"
)


def test_a_node_in_a_projects_network_answers_through_the_gateway_only(
    srv: RunningServer, a_listens: dict[str, Any], api: httpx.Client
) -> None:
    health = {"path": "/", "intervalS": 0.5, "timeoutS": 1, "healthyThreshold": 1, "unhealthyThreshold": 1}
    r = api.post(
        f"/projects/{a_listens['a']}/nodes",
        json={
            "name": "netsvc",
            "command": ["/usr/bin/python3", "-c", NODE_SERVICE],
            "healthCheck": health,
            "configuration": "s1.1",
        },
    )
    assert r.status_code == 201, r.text
    node_id = r.json()["id"]
    deadline = time.monotonic() + 120
    while (n := api.get(f"/projects/{a_listens['a']}/nodes/{node_id}").json())["status"] != "Healthy":
        assert time.monotonic() < deadline, (n["instances"], srv.log()[-3000:])
        time.sleep(0.3)
    r = api.post(
        f"/projects/{a_listens['a']}/aliases",
        json={"name": "netsvc", "public": True, "nodes": [{"nodeId": node_id, "weight": 100}]},
    )
    assert r.status_code == 201, r.text
    gw = srv.gateway_url
    while True:  # the gateway follows the store within a second
        got = httpx.get(gw + "/", headers={"x-node-alias": "netsvc"}, timeout=5)
        if got.status_code == 200:
            break
        assert time.monotonic() < deadline, got.text
        time.sleep(0.3)
    assert got.json()["host"] == a_listens["address"]  # the instance listens in A's network
    # Project B reaches it through the gateway, as anyone may, but not directly.
    port = next(i for i in n["instances"] if i["status"] == "Healthy").get("port")
    out = _run(
        api,
        a_listens["b"],
        f"curl -s -H 'x-node-alias: netsvc' http://127.0.0.1:{srv.env['ATOLL_GATEWAY_PORT']}/; echo",
    )
    assert json.loads(out.splitlines()[0])["host"] == a_listens["address"], out
    if port:
        seen = _probe(api, a_listens["b"], [f"{a_listens['address']}:{port}"])
        assert set(seen.values()) == {"closed"}, seen
    api.delete(f"/projects/{a_listens['a']}/aliases/netsvc")
    api.delete(f"/projects/{a_listens['a']}/nodes/{node_id}")


def test_doctor_says_every_kind_of_isolation_is_in_force(srv: RunningServer) -> None:
    env = {**os.environ, **{k: v for k, v in srv.env.items() if k.startswith("ATOLL_")}}
    atoll = str(Path(sys.executable).with_name("atoll"))
    out = subprocess.run(
        [atoll, "doctor", "--format", "json"], env=env, capture_output=True, text=True, timeout=60
    )
    rows = {r["what"]: r for r in json.loads(out.stdout)["isolation"]}
    assert all(r["inForce"] for r in rows.values()), rows
    assert "network namespace per project" in rows["network"]["detail"]
