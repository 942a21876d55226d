"""Serving outlives the control plane: with constant load through an alias, `atoll up` killed with
SIGKILL and started again fails no request, and the new `atoll up` adopts the data plane (HAProxy
under its keeper) instead of starting another."""

from __future__ import annotations

import json
from typing import Any

from tests.deploy.conftest import (
    FAST,
    HEALTH,
    create_node,
    gateway_ready,
    service_command,
    set_alias,
    wait_healthy,
)
from tests.deploy.test_switching import Load
from tests.support.server import RunningServer, start_server


def keeper_pid(server: RunningServer) -> int:
    return int(json.loads((server.data_dir / "gateway" / "keeper.json").read_text())["pid"])


def test_kill_and_restart_of_atoll_up_fail_no_request(server: RunningServer, project: dict[str, Any]) -> None:
    pid = project["id"]
    n = create_node(server, pid, "steady", command=service_command(), healthCheck=HEALTH)
    wait_healthy(server, pid, n["id"])
    set_alias(server, pid, "steady", {n["id"]: 100}, create=True)
    gateway_ready(server, "steady", server.admin_token)
    keeper = keeper_pid(server)
    headers = {"x-node-alias": "steady", "authorization": f"Bearer {server.admin_token}"}
    ports = {k: server.env[k] for k in ("ATOLL_PORT", "ATOLL_GATEWAY_PORT")}
    again: RunningServer | None = None
    try:
        with Load(server.gateway_url + "/", headers) as load:
            load.settle()
            server.kill()  # the whole process group of `atoll up`, as a crash would
            load.settle()  # served from the last routes while nothing of the control plane runs
            again = start_server(server.data_dir, extra_env={**FAST, **ports})
            load.settle()
            assert keeper_pid(again) == keeper  # adopted, not replaced
            load.settle()
        assert load.failures == [], load.failures[:5]
    finally:
        if again is not None:
            again.stop()
