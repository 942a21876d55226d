"""A node grows from minInstances towards maxInstances while the requests in flight through the
gateway exceed what its instances should carry (spec §6.1: it "scales within the range")."""

from __future__ import annotations

from typing import Any

from tests.deploy.conftest import (
    HEALTH,
    create_node,
    gateway_ready,
    node,
    service_command,
    set_alias,
    wait_for,
    wait_healthy,
)
from tests.deploy.test_switching import Load
from tests.support.server import RunningServer


def test_node_scales_up_under_load(server: RunningServer, project: dict[str, Any]) -> None:
    pid = project["id"]
    n = create_node(
        server, pid, "elastic", command=service_command(), healthCheck=HEALTH, minInstances=1, maxInstances=2
    )
    wait_healthy(server, pid, n["id"])
    set_alias(server, pid, "elastic", {n["id"]: 100}, create=True)
    gateway_ready(server, "elastic", server.admin_token)
    headers = {"x-node-alias": "elastic", "authorization": f"Bearer {server.admin_token}"}
    # 12 clients, each request 0.3 s: about 12 in flight, over the 4 an instance should carry
    with Load(server.gateway_url + "/slow", headers, clients=12) as load:
        wait_for(
            "a second instance",
            lambda: (
                len([i for i in node(server, pid, n["id"])["instances"] if i["status"] == "Healthy"]) == 2
            ),
            timeout=60,
            every=0.5,
        )
        load.settle(50)
    assert load.failures == [], load.failures[:5]
    assert len(node(server, pid, n["id"])["instances"]) == 2  # never past maxInstances
