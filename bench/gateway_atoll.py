"""Atoll for bench/gateway.py: a real ``atoll up`` on free ports with its own data dir, a project,
the noop model registered through the model outbox, nodes, the alias, and, at the end, every process
of it stopped (the server's process group, then the node instances it started, by pid)."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from procs import BenchError, Process, free_port, kill_group

from atoll.dataplane.proxy import HAProxyPlane
from atoll.envs.build import usable_by_others
from atoll.runtime.local.proc_files import is_same_process, read_json

CACHE = Path.home() / ".cache" / "atoll-bench"
ENVS = CACHE / "envs"
CONFIGURATION = "s1.1"
ALIAS = "bench"
BODY = '{"inputs": [{"name": "input__0", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}'
PATH = "/v2/models/noop/infer"
NOOP_META = {
    "name": "noop",
    "format": "noop",
    "description": "no-op model for bench/gateway.py",
    "inputs": [{"name": "input__0", "datatype": "FP32", "shape": [-1, 4]}],
    "outputs": [{"name": "output__0", "datatype": "FP32", "shape": [-1, 4]}],
}
# The rolling update needs room for one more instance than run (2 nodes + 1): admission would
# otherwise hold it on this 2-core machine. Nothing else is changed from the defaults.
ATOLL_ENV = {"ATOLL_POOL_CPUS": "8", "ATOLL_POOL_MEMORY_GB": "16"}


def atoll_settings() -> dict[str, str]:
    """The settings this run changes: the shared envs cache, room for the rolling update, and,
    where the cache is not reachable by other users (a home dir of mode 0700), node instances run
    as the server's own user instead of the project's uid (the data path is the same)."""
    settings = {"ATOLL_ENVS_DIR": str(ENVS), **ATOLL_ENV}
    ENVS.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0 and not usable_by_others(ENVS):
        settings["ATOLL_WORKLOAD_UID_BASE"] = "0"
    return settings


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


# -- Atoll -----------------------------------------------------------------------------------------


def atoll_executable() -> str:
    near = Path(sys.executable).with_name("atoll")
    if near.exists():
        return str(near)
    found = shutil.which("atoll")
    if not found:
        raise BenchError("no `atoll` executable next to this Python or on PATH (run `uv sync` first)")
    return found


@dataclass
class Atoll:
    """A running ``atoll up`` with a project, the noop model, nodes and the alias."""

    workdir: Path
    proc: Process | None = None
    url: str = ""
    gateway_url: str = ""
    token: str = ""
    project_id: str = ""
    nodes: dict[str, str] = field(default_factory=dict)  # name → id
    settings: dict[str, str] = field(default_factory=atoll_settings)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url + "/api/v1",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
            trust_env=False,
        )

    def start(self) -> None:
        port, gw_port, password = free_port(), free_port(), secrets.token_urlsafe(16)
        self.url, self.gateway_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{gw_port}"
        env = {
            **os.environ,
            "ATOLL_DATA_DIR": str(self.data_dir),
            "ATOLL_PORT": str(port),
            "ATOLL_GATEWAY_PORT": str(gw_port),
            "ATOLL_HOST": "127.0.0.1",
            "ATOLL_ADMIN_PASSWORD": password,
            "ATOLL_LOG_LEVEL": "warning",
            **self.settings,
        }
        self.env = env
        self.proc = Process([atoll_executable(), "up"], env, self.workdir / "atoll.log").start()
        self._wait_up()
        r = httpx.post(
            self.url + "/api/v1/auth/tokens",
            json={"username": "admin", "password": password, "name": "bench"},
            trust_env=False,
        )
        r.raise_for_status()
        self.token = r.json()["token"]

    def _wait_up(self) -> None:
        for what, url in (("atoll up", self.url), ("the gateway", self.gateway_url)):

            def up(url: str = url) -> bool:
                assert self.proc is not None
                self.proc.check_alive("atoll up")
                try:
                    return httpx.get(url + "/healthz", timeout=1, trust_env=False).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_for(what, up, 60, 0.1)

    def kill(self) -> None:
        """SIGKILL the process group of `atoll up`, as a crash would (HAProxy's keeper and the node
        instances run in sessions of their own and go on)."""
        assert self.proc is not None and self.proc.proc is not None
        kill_group(self.proc.pid, signal.SIGKILL)
        self.proc.proc.wait(timeout=10)

    def restart(self) -> None:
        """`atoll up` again on the same ports and data dir (after ``kill``); the token stays valid."""
        assert self.proc is not None and not self.proc.alive()
        self.proc = Process([atoll_executable(), "up"], self.env, self.workdir / "atoll.log").start()
        self._wait_up()

    def keeper_pid(self) -> int | None:
        """The pid of the data plane's keeper (DATA_DIR/gateway/keeper.json)."""
        pid = (read_json(self.data_dir / "gateway" / "keeper.json") or {}).get("pid")
        return pid if isinstance(pid, int) else None

    def gateway_pid(self) -> int:
        """The process serving the gateway port: HAProxy's worker."""
        worker = HAProxyPlane(self.data_dir / "gateway", "", "", 0).admin.worker_pid()
        if worker is None:
            raise BenchError("no gateway process: HAProxy has no worker")
        return worker

    def create_project(self) -> None:
        with self.api() as api:
            org = api.get("/organizations").json()["items"][0]["id"]
            com = api.post("/communities", json={"organizationId": org, "name": "bench-com"})
            check(com, 201)
            body = {"communityId": com.json()["id"], "name": "bench", "settings": {}}
            r = api.post("/projects", json=body)
            check(r, 201)
            self.project_id = r.json()["id"]

    def register_noop_model(self) -> str:
        """Write the noop model into the project's outbox, as ``atoll.models.save`` does."""
        box = self.data_dir / "projects" / self.project_id / "model-outbox" / "bench"
        box.mkdir(parents=True, exist_ok=True)
        name = str(uuid.uuid4())
        tmp = box / f".{name}.tmp"
        tmp.mkdir()
        (tmp / "meta.json").write_text(json.dumps(NOOP_META))
        tmp.rename(box / name)
        result = box / f"{name}.result.json"
        wait_for("the noop model to be registered", result.exists, 30, 0.1)
        got = json.loads(result.read_text())
        if "error" in got:
            raise BenchError(f"the noop model was refused: {got['error']}")
        return str(got["id"])

    def node(self, ref: str) -> dict[str, Any]:
        with self.api() as api:
            r = api.get(f"/projects/{self.project_id}/nodes/{ref}")
            check(r, 200)
            return dict(r.json())

    def create_node(self, name: str, **spec: Any) -> str:
        """A node of the noop model, or, given ``spec`` (e.g. ``command``), of that."""
        with self.api() as api:
            body = {"name": name, "configuration": CONFIGURATION, **(spec or {"models": ["noop"]})}
            r = api.post(f"/projects/{self.project_id}/nodes", json=body)
            check(r, 201)
            self.nodes[name] = r.json()["id"]
        return self.nodes[name]

    def wait_healthy(self, name: str, revision: int | None = None, timeout: float = 600) -> dict[str, Any]:
        """Until the node is Healthy with one instance, all of ``revision`` (when given)."""

        def ready() -> dict[str, Any] | None:
            assert self.proc is not None
            self.proc.check_alive("atoll up")
            n = self.node(self.nodes[name])
            insts = n["instances"]
            if any(i["restarts"] >= 3 for i in insts):
                raise BenchError(f"node {name} keeps failing: {n['detail']} {[i['detail'] for i in insts]}")
            if n["status"] != "Healthy" or not insts or any(i["status"] != "Healthy" for i in insts):
                return None
            if revision is not None and (
                n["revision"] < revision or any(i["revision"] != n["revision"] for i in insts)
            ):
                return None
            return n

        return dict(wait_for(f"node {name} Healthy", ready, timeout, 0.2))

    def set_alias(self, weights: dict[str, int], create: bool = False, alias: str = ALIAS) -> None:
        body = {"nodes": [{"nodeId": self.nodes[k], "weight": v} for k, v in weights.items()]}
        with self.api() as api:
            if create:
                r = api.post(
                    f"/projects/{self.project_id}/aliases", json={"name": alias, "public": False, **body}
                )
                check(r, 201)
            else:
                check(api.patch(f"/projects/{self.project_id}/aliases/{alias}", json=body), 200)

    def update_node_env(self, name: str, env: dict[str, str]) -> int:
        """Start a rolling replacement; returns the node's new revision."""
        with self.api() as api:
            r = api.patch(f"/projects/{self.project_id}/nodes/{self.nodes[name]}", json={"env": env})
            check(r, 200, 202)
            return int(r.json()["revision"])

    def delete_node(self, name: str) -> None:
        with self.api() as api:
            check(api.delete(f"/projects/{self.project_id}/nodes/{self.nodes[name]}"), 202, 204)

        def gone() -> bool:
            with self.api() as api:
                return api.get(f"/projects/{self.project_id}/nodes/{self.nodes[name]}").status_code == 404

        wait_for(f"node {name} deleted", gone, 60, 0.2)

    def alias_headers(self, alias: str = ALIAS) -> dict[str, str]:
        return {
            "content-type": "application/json",
            "x-node-alias": alias,
            "authorization": f"Bearer {self.token}",
        }

    def node_requests(self) -> dict[str, float]:
        """The gateway's ``node_requests`` counters, by node name."""
        auth = {"authorization": f"Bearer {self.token}"}  # the admin's: /metrics needs a credential
        text = httpx.get(self.gateway_url + "/metrics", headers=auth, timeout=5, trust_env=False).text
        out: dict[str, float] = {}
        for m in re.finditer(r'^node_requests_total\{[^}]*node_name="([^"]+)"[^}]*\} (\S+)$', text, re.M):
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(2))
        return out

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()  # atoll up, by its process group
        HAProxyPlane(self.data_dir / "gateway", "", "", 0).stop()  # it outlives `atoll up` by design
        # Node instances run in sessions of their own and outlive a stopped server by design:
        # stop the ones this run's server started (its runtime state), checked by start time.
        for state in sorted((self.data_dir / "runtime").glob("*/*.json")):
            if state.name not in ("shim.json", "started.json"):
                continue
            info = read_json(state) or {}
            pid = info.get("pid")
            if isinstance(pid, int) and is_same_process(pid, info.get("start_time")):
                kill_group(pid, signal.SIGTERM)
        time.sleep(1)
        for state in (self.data_dir / "runtime").glob("*/*.json"):
            info = read_json(state) or {}
            pid = info.get("pid")
            if state.name in ("shim.json", "started.json") and isinstance(pid, int):
                if is_same_process(pid, info.get("start_time")):
                    kill_group(pid, signal.SIGKILL)


def answers(url: str) -> bool:
    try:
        r = httpx.post(url, content=BODY, headers={"content-type": "application/json"}, trust_env=False)
        return r.status_code == 200
    except httpx.HTTPError:
        return False


def check(r: httpx.Response, *ok: int) -> None:
    if r.status_code not in ok:
        raise BenchError(f"{r.request.method} {r.request.url} → HTTP {r.status_code}: {r.text[:500]}")


def instance_pgid(atoll: Atoll, node: dict[str, Any]) -> int:
    """The model server's process group (the local runtime's started.json: pid = process group)."""
    wid = node["instances"][0]["workloadId"]
    info = read_json(atoll.data_dir / "runtime" / wid / "started.json") or {}
    return int(info["pid"])
