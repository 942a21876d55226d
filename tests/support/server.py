"""Start the real `atoll up` as a subprocess on a free port, and stop it by process group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from atoll.dataplane.proxy import HAProxyPlane
from tests.support.postgres import free_port

ADMIN_PASSWORD = "admin-pass-1234"

# Built environments shared by every test server that names it (ATOLL_ENVS_DIR), kept across runs:
# only the first run on a machine builds JupyterLab's and the built-in ones. As root it lies where
# per-project users may pass (a root server's workloads run from it), and out of /tmp and /var/tmp,
# which a workload sees as its own project's.
ENV_CACHE = (
    Path("/var/cache/atoll-test-envs") if os.geteuid() == 0 else Path.home() / ".cache" / "atoll-test-envs"
)


def user_password(username: str) -> str:
    """A password for a test account that the password policy accepts (long, hard to guess)."""
    return f"{username}-tidal-lantern-42"


# Settings every server started from here gets, by its data dir, before the caller's extra_env:
# tests/ray sets the Ray runtime here for its package, so the acceptance tests it re-runs (and
# the restarts inside them) all place their workloads on the Ray cluster.
runtime_env: Callable[[Path], dict[str, str]] | None = None
# Called after stop() (not kill(): a crash leaves its workloads to the next start): tests/ray
# releases the stopped server's Ray actors here, which would otherwise hold the cluster's room.
after_stop: Callable[[RunningServer], None] | None = None


@dataclass
class RunningServer:
    url: str
    data_dir: Path
    proc: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    admin_token: str = ""

    def api(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.admin_token}"}
        return httpx.Client(base_url=self.url + "/api/v1", headers=headers, timeout=30)

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.env['ATOLL_GATEWAY_PORT']}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the server's process group, as a crash would (workloads run in their own sessions)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        # HAProxy's keeper outlives `atoll up` by design: stopped here.
        HAProxyPlane(self.data_dir / "gateway", "", "", 0).stop()
        if after_stop is not None:
            after_stop(self)


def start_server(
    data_dir: Path, database_url: str = "", extra_env: dict[str, str] | None = None, *, login: bool = True
) -> RunningServer:
    port = free_port()
    env = {
        **os.environ,
        "ATOLL_DATA_DIR": str(data_dir),
        "ATOLL_PORT": str(port),
        "ATOLL_GATEWAY_PORT": str(free_port()),
        "ATOLL_HOST": "127.0.0.1",
        "ATOLL_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "ATOLL_LOG_LEVEL": "warning",
        **(runtime_env(data_dir) if runtime_env is not None else {}),
        **(extra_env or {}),
    }
    if database_url:
        env["ATOLL_DATABASE_URL"] = database_url
    # The server creates the data dir itself (owner-only); the log sits beside it.
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.with_name(data_dir.name + ".log")
    out = open(log_path, "wb")
    atoll = str(Path(sys.executable).with_name("atoll"))
    proc = subprocess.Popen(
        [atoll, "up"], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    server = RunningServer(  # extra_env may name the ports (a restart on the same ones)
        url=f"http://127.0.0.1:{env['ATOLL_PORT']}", data_dir=data_dir, proc=proc, log_path=log_path, env=env
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"atoll up exited with {proc.returncode}:\n{server.log()}")
        try:
            if httpx.get(server.url + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    else:
        server.stop()
        raise RuntimeError(f"atoll up did not answer within 60 s:\n{server.log()}")
    while True:  # the deploy gateway: HAProxy, which `atoll up` starts (or adopts) under its keeper
        try:
            if httpx.get(server.gateway_url + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            server.stop()
            raise RuntimeError(f"the gateway did not answer within 60 s:\n{server.log()}")
        time.sleep(0.1)
    if not login:
        return server
    r = httpx.post(
        server.url + "/api/v1/auth/tokens",
        json={"username": "admin", "password": ADMIN_PASSWORD, "name": "tests"},
    )
    r.raise_for_status()
    server.admin_token = r.json()["token"]
    return server
