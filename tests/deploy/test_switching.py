"""Zero-downtime deploy under constant load: alias weight switches, node deletion, a killed
instance, and a rolling update of a node — counting every failed request."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

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
from tests.support.server import RunningServer


class Load:
    """Clients sending requests back to back through the gateway, counting answers and failures."""

    def __init__(self, url: str, headers: dict[str, str], clients: int = 4) -> None:
        self.url, self.headers, self.clients = url, headers, clients
        self.ok: Counter[str] = Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _run(self) -> None:
        with httpx.Client(timeout=10, trust_env=False) as c:
            while not self._stop.is_set():
                try:
                    r = c.get(self.url, headers=self.headers)
                    with self._lock:
                        if r.status_code == 200:
                            self.ok[r.json()["version"]] += 1
                        else:
                            self.failures.append(f"{r.status_code} {r.text[:200]}")
                except httpx.HTTPError as e:
                    with self._lock:
                        self.failures.append(repr(e))

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=15)

    def total(self) -> int:
        with self._lock:
            return sum(self.ok.values()) + len(self.failures)

    def settle(self, n: int = 200) -> None:
        """Let at least ``n`` more requests go through."""
        start = self.total()
        wait_for(f"{n} requests", lambda: self.total() >= start + n, timeout=60)


def test_alias_switch_and_node_deletion_fail_no_request(
    server: RunningServer, project: dict[str, Any]
) -> None:
    pid = project["id"]
    v1 = create_node(
        server, pid, "sw-v1", command=service_command(), env={"VERSION": "v1"}, healthCheck=HEALTH
    )
    v2 = create_node(
        server, pid, "sw-v2", command=service_command(), env={"VERSION": "v2"}, healthCheck=HEALTH
    )
    wait_healthy(server, pid, v1["id"])
    wait_healthy(server, pid, v2["id"])
    set_alias(server, pid, "switch", {v1["id"]: 100, v2["id"]: 0}, create=True)
    gateway_ready(server, "switch", server.admin_token)
    headers = {"x-node-alias": "switch", "authorization": f"Bearer {server.admin_token}"}
    with Load(server.gateway_url + "/", headers) as load:
        load.settle()
        assert set(load.ok) == {"v1"}
        set_alias(server, pid, "switch", {v1["id"]: 50, v2["id"]: 50})
        wait_for("both versions answering", lambda: load.ok["v2"] > 50)
        load.settle()
        set_alias(server, pid, "switch", {v1["id"]: 0, v2["id"]: 100})
        time.sleep(1.0)  # the gateway follows the store within a second
        before = Counter(load.ok)
        load.settle()
        assert load.ok["v1"] == before["v1"], "v1 still gets requests at 0%"
        with server.api() as api:
            r = api.delete(f"/projects/{pid}/nodes/{v1['id']}")
            assert r.status_code == 202, r.text
        wait_for(
            "v1 deleted",
            lambda: server.api().get(f"/projects/{pid}/nodes/{v1['id']}").status_code == 404,
            timeout=60,
        )
        load.settle()
    assert load.failures == [], load.failures[:5]
    assert load.ok["v1"] > 0 and load.ok["v2"] > 200


def test_delete_refused_while_alias_sends_traffic(server: RunningServer, project: dict[str, Any]) -> None:
    pid = project["id"]
    n = create_node(server, pid, "held", command=service_command(), healthCheck=HEALTH)
    set_alias(server, pid, "holder", {n["id"]: 100}, create=True)
    with server.api() as api:
        r = api.delete(f"/projects/{pid}/nodes/{n['id']}")
        assert r.status_code == 409 and "holder" in r.json()["detail"]
        bad = api.patch(
            f"/projects/{pid}/aliases/holder", json={"nodes": [{"nodeId": n["id"], "weight": 90}]}
        )
        assert bad.status_code == 422 and "100" in bad.json()["detail"]
        assert api.get(f"/projects/{pid}/aliases/holder").json()["nodes"][0]["weight"] == 100


def test_killed_instance_is_restarted_and_no_request_fails(
    server: RunningServer, project: dict[str, Any]
) -> None:
    pid = project["id"]
    n = create_node(
        server,
        pid,
        "two",
        command=service_command(),
        env={"VERSION": "k"},
        healthCheck=HEALTH,
        minInstances=2,
    )
    n = wait_healthy(server, pid, n["id"], count=2)
    set_alias(server, pid, "killme", {n["id"]: 100}, create=True)
    gateway_ready(server, "killme", server.admin_token)
    victim = n["instances"][0]
    headers = {"x-node-alias": "killme", "authorization": f"Bearer {server.admin_token}"}
    with Load(server.gateway_url + "/", headers) as load:
        load.settle()
        os.kill(_workload_pid(server, victim["workloadId"]), signal.SIGKILL)

        def restarted() -> bool:
            inst = next(i for i in node(server, pid, n["id"])["instances"] if i["id"] == victim["id"])
            return inst["restarts"] >= 1 and inst["status"] == "Healthy"

        seen: set[str] = set()

        def watch() -> bool:
            inst = next(i for i in node(server, pid, n["id"])["instances"] if i["id"] == victim["id"])
            seen.add(inst["status"])
            return restarted()

        wait_for("the killed instance back Healthy", watch, timeout=60)
        load.settle()
    assert "Unhealthy" in seen, seen  # out of balancing until it passes its health check again
    assert load.failures == [], load.failures[:5]


def _workload_pid(server: RunningServer, workload_id: str) -> int:
    """The pid of a workload's command, from the local runtime's state (the process to kill): the
    server's own, or on the ray runtime the one of the Ray node it runs on (same machine here)."""
    import json

    root = Path(server.env["ATOLL_RAY_NODE_DIR"]) if "ATOLL_RAY_NODE_DIR" in server.env else server.data_dir
    state = json.loads((root / "runtime" / workload_id / "started.json").read_text())
    return int(state["pid"])


def test_rolling_update_replaces_instances_without_failures(
    server: RunningServer, project: dict[str, Any]
) -> None:
    pid = project["id"]
    n = create_node(
        server,
        pid,
        "roll",
        command=service_command(),
        env={"VERSION": "r1"},
        healthCheck=HEALTH,
        minInstances=2,
    )
    wait_healthy(server, pid, n["id"], count=2)
    set_alias(server, pid, "rolling", {n["id"]: 100}, create=True)
    gateway_ready(server, "rolling", server.admin_token)
    headers = {"x-node-alias": "rolling", "authorization": f"Bearer {server.admin_token}"}
    most = 0
    with Load(server.gateway_url + "/", headers) as load:
        load.settle()
        with server.api() as api:
            r = api.patch(f"/projects/{pid}/nodes/{n['id']}", json={"env": {"VERSION": "r2"}})
            assert r.status_code == 200 and r.json()["revision"] == 2, r.text

        def rolled() -> bool:
            nonlocal most
            insts = node(server, pid, n["id"])["instances"]
            live = [i for i in insts if i["status"] != "Deleting"]
            most = max(most, len(live))
            return len(insts) == 2 and all(i["revision"] == 2 and i["status"] == "Healthy" for i in insts)

        wait_for("the rollout", rolled, timeout=90)
        load.settle()
    assert load.failures == [], load.failures[:5]
    assert most <= 3, f"{most} live instances at once: more than minInstances + 1"
    assert load.ok["r1"] > 0 and load.ok["r2"] > 0
