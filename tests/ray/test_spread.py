"""Node instances on the two-node Ray cluster: placement by each node's room, and the gateway
reaching instances at their node's address (a module of its own: it needs the cluster's room)."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.deploy.conftest import (  # noqa: F401 - fixtures
    HEALTH,
    create_node,
    project,
    server,
    service_command,
    wait_healthy,
)
from tests.ray.conftest import GPU_NODE, HEAD
from tests.support.server import RunningServer


def test_instances_spread_over_the_nodes_by_their_room(
    server: RunningServer,  # noqa: F811
    project: dict[str, Any],  # noqa: F811
) -> None:
    """Three s1.2 instances (2 vCPU each) fit no one node: the head (2 CPUs) takes one, the GPU
    node (4) two; the gateway reaches each at its node's address."""
    pid = project["id"]
    n = create_node(
        server,
        pid,
        "spread",
        command=service_command(),
        healthCheck=HEALTH,
        minInstances=3,
        configuration="s1.2",
    )
    n = wait_healthy(server, pid, n["id"], count=3, timeout=120)
    hosts = sorted(i["host"] for i in n["instances"])
    assert hosts == [HEAD, GPU_NODE, GPU_NODE], n["instances"]
    # Each answers at its node's address, through the node's route in the gateway.
    auth = {"authorization": f"Bearer {server.admin_token}", "x-node-id": n["id"]}
    seen: dict[str, str] = {}
    deadline = time.monotonic() + 30  # the data plane follows the store twice a second
    while len(seen) < 3 and time.monotonic() < deadline:
        r = httpx.get(server.gateway_url + "/", headers=auth, timeout=10)
        assert r.status_code == 200, r.text
        seen[r.json()["instance"]] = r.json()["host"]
    assert seen == {i["id"]: i["host"] for i in n["instances"]}
    with server.api() as api:
        assert api.delete(f"/projects/{pid}/nodes/{n['id']}").status_code in (200, 202, 204)
