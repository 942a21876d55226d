"""Nodes from a command, aliases through the gateway (HAProxy): routing, auth, errors."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx

from tests.deploy.conftest import (
    HEALTH,
    create_node,
    gateway_ready,
    service_command,
    set_alias,
    wait_for,
    wait_healthy,
)
from tests.support.server import RunningServer


def test_command_node_answers_through_alias_and_node_routes(
    server: RunningServer, project: dict[str, Any]
) -> None:
    pid = project["id"]
    n = create_node(
        server,
        pid,
        "svc-a",
        command=service_command(),
        env={"VERSION": "a"},
        healthCheck=HEALTH,
        configuration="s1.1",
    )
    assert n["status"] == "Created" and n["kind"] == "command"
    wait_healthy(server, pid, n["id"])
    set_alias(server, pid, "svc", {n["id"]: 100}, create=True)
    gateway_ready(server, "svc", server.admin_token)
    auth = {"authorization": f"Bearer {server.admin_token}"}
    r = httpx.get(server.gateway_url + "/hello?x=1", headers={"x-node-alias": "svc", **auth})
    assert r.status_code == 200 and r.json()["version"] == "a" and r.json()["path"] == "/hello?x=1"
    assert r.json()["auth"] is None  # the Atoll token stays at the gateway
    r = httpx.get(server.gateway_url + "/alias/svc/deep/path", headers=auth)
    assert r.json()["path"] == "/deep/path"
    r = httpx.get(server.gateway_url + "/x", headers={"x-node-alias": "datasphere.user.svc", **auth})
    assert r.status_code == 200
    r = httpx.get(server.gateway_url + "/", headers={"x-node-id": n["id"], **auth})
    assert r.status_code == 200 and r.json()["version"] == "a"
    r = httpx.post(server.gateway_url + "/alias/svc/", content=b"x" * 1000, headers=auth)
    assert r.json()["len"] == 1000
    # private: no token, a bad token
    r = httpx.get(server.gateway_url + "/", headers={"x-node-alias": "svc"})
    assert r.status_code == 401 and "Bearer" in r.json()["error"]
    r = httpx.get(server.gateway_url + "/", headers={"x-node-alias": "svc", "authorization": "Bearer nope"})
    assert r.status_code == 401
    r = httpx.get(server.gateway_url + "/", headers={"x-node-alias": "nope", **auth})
    assert r.status_code == 404 and "nope" in r.json()["error"]
    r = httpx.get(server.gateway_url + "/")
    assert r.status_code == 404 and "x-node-alias" in r.json()["error"]
    # 16 MB cap
    r = httpx.post(server.gateway_url + "/alias/svc/", content=b"x" * (16 * 1024 * 1024 + 1), headers=auth)
    assert r.status_code == 413 and "16 MB" in r.json()["error"]

    # metrics (HAProxy's counters are read every second; its own answers, as the 413, as they come)
    too_big = f'node_http_codes_total{{code="413",node_id="{n["id"]}",node_name="svc-a"}} 1.0'
    served = f'node_http_codes_total{{code="200",node_id="{n["id"]}",node_name="svc-a"}}'

    def counted() -> str | None:
        text = httpx.get(server.gateway_url + "/metrics", headers=auth).text  # an admin's token
        return text if too_big in text and served in text else None

    m = wait_for("the requests counted", counted, 10)
    assert 'alias_requests_total{alias_name="svc"}' in m
    assert 'alias_http_codes_total{alias_name="svc",code="413"} 1.0' in m


def test_requests_take_turns_over_every_instance(server: RunningServer, project: dict[str, Any]) -> None:
    """Round robin: one client's requests, one after another, go to each instance in turn (reused
    connections to the instances must not make an instance without one skip its turn)."""
    pid = project["id"]
    n = create_node(server, pid, "turns", command=service_command(), healthCheck=HEALTH, minInstances=3)
    n = wait_healthy(server, pid, n["id"], count=3)
    headers = {"x-node-id": n["id"], "authorization": f"Bearer {server.admin_token}"}
    with httpx.Client(base_url=server.gateway_url, headers=headers, timeout=10) as client:
        wait_for(
            "the gateway to route to all three instances",
            lambda: len({client.get("/").json()["instance"] for _ in range(9)}) == 3,
            timeout=15,
        )
        got = Counter(client.get("/").json()["instance"] for _ in range(30))
    assert sorted(got.values()) == [10, 10, 10], got
    with server.api() as api:
        api.delete(f"/projects/{pid}/nodes/{n['id']}").raise_for_status()
