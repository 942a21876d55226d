"""Notebook start-up: "open → first cell executed" for Atoll, plain `jupyter lab` and JupyterHub.

Issue 4's targets: a project's JupyterLab is usable within 2 s with a warm pool, and no slower than
a plain `jupyter lab` start + 1 s without one. This script measures the three contenders on the
same machine in the same run and prints their times and the ratios.

What is timed, for each contender, is what a user waits for: from the request that starts a server
until the result of a first cell (``1+1``) comes back. That includes creating the kernel
(``POST …/api/kernels``) and executing over the kernel's websocket (Jupyter messaging protocol,
``execute_request`` on the shell channel, waiting for ``execute_result``). The same client code does
this for all three; the poll interval (readiness, kernel creation retries) is the same, 50 ms.

1. **Atoll** — a real ``atoll up`` on a free port (own data dir, environments cached in
   the tests' environment cache). The clock starts at
   ``POST /api/v1/projects/{id}/notebook/open``, polls ``GET …/notebook`` until ``READY``, then
   reaches JupyterLab through the gateway, ``/nb/{id}/…``, with the Atoll API token as a bearer
   token. Each run is followed by ``…/notebook/stop`` and a wait for ``STOPPED``. It runs twice:
   without a warm pool (``ATOLL_NOTEBOOK_WARM_POOL=0``, the default) and, as "Atoll, warm pool",
   with one loaded JupyterLab process kept ready (``=1``); there each start first waits, untimed,
   until the pool has refilled after the previous run, as it has for a user who opens a notebook
   a few seconds after the last one was opened.
2. **plain jupyter lab** — the same JupyterLab, in the same environment and with the same flags
   Atoll uses (``atoll.notebooks.server``), started as a subprocess. The clock starts just before
   the process is spawned and the first cell goes straight to its port (no proxy).
3. **JupyterHub** — the current JupyterHub with ``SimpleLocalProcessSpawner`` (a local process per
   user, no system users), its configurable-http-proxy, and the same JupyterLab / ipykernel pins.
   The clock starts at ``POST /hub/api/users/bench/server`` (with a service token that has admin
   scopes) and the first cell goes through the hub's proxy (``/user/bench/…``). The hub itself is
   already running, as Atoll's server is. Its Python packages live in a venv built with uv under
   ``~/.cache/atoll-bench`` and the proxy is npm-installed there (``bench/jupyterhub/package.json``):
   nothing is added to the project's own dependencies.

Each contender does one warm-up start that is not counted (Atoll: the environment build on a fresh
machine; all: cold file caches and bytecode), then ``--runs`` measured starts, each stopped before
the next. Everything binds to 127.0.0.1; every process started here runs in its own session and is
stopped by its process group id, also on failure.

Run: ``.venv/bin/python bench/notebooks.py [--runs 3] [--skip-hub] [--skip-atoll] [--skip-warm]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets
from procs import BenchError, Process, free_port, kill_group, remove_networks

from atoll.envs import builtins
from atoll.envs.build import EnvironmentBuilder
from atoll.envs.interpreter import current_version
from atoll.notebooks.server import jupyter_command, notebook_environment
from atoll.runtime.local.proc_files import is_same_process, read_json

BENCH_DIR = Path(__file__).resolve().parent
WARM_NAME = "Atoll, warm pool"
CACHE = Path.home() / ".cache" / "atoll-bench"
ATOLL_ENVS_DIR = (
    Path("/var/cache/atoll-test-envs") if os.geteuid() == 0 else Path.home() / ".cache" / "atoll-test-envs"
)

JUPYTERHUB_REQUIREMENT = "jupyterhub==6.1.1"  # configurable-http-proxy: bench/jupyterhub/package.json
HUB_USER = "bench"
CONFIGURATION = "s1.1"  # the laptop preset: fits the 2-core development machine

POLL_S = 0.05
SERVER_TIMEOUT_S = 120.0  # one start, once the environment exists
WARMUP_TIMEOUT_S = 1800.0  # the first Atoll start may build the notebook environment

# Targets from issue 4.
WARM_POOL_TARGET_S = 2.0
WARM_FIRST_CELL_TARGET_S = 0.7  # issue 18
HUB_TIMES_TARGET = 4.0  # issue 18: with a warm pool, at least this many times JupyterHub's speed
PLAIN_MARGIN_S = 1.0


# -- the first cell --------------------------------------------------------------------------------


async def first_cell(client: httpx.AsyncClient, base: str, headers: dict[str, str], deadline: float) -> None:
    """Create a kernel on the Jupyter server at ``base`` (ends with ``/``) and run ``1+1`` on it.

    Returns when the ``execute_result`` (``2``) arrives. Kernel creation is retried while the route
    is not there yet (404/502/503: a proxy that has not caught up), until ``deadline``.
    """
    while True:
        resp = await client.post(base + "api/kernels", headers=headers, json={"name": "python3"})
        if resp.status_code == 201:
            break
        if resp.status_code not in (404, 502, 503) or time.monotonic() > deadline:
            raise BenchError(f"POST {base}api/kernels → HTTP {resp.status_code}: {resp.text[:300]}")
        await asyncio.sleep(POLL_S)
    kernel_id = resp.json()["id"]

    session = uuid.uuid4().hex
    msg_id = uuid.uuid4().hex
    ws_url = "ws" + base.removeprefix("http") + f"api/kernels/{kernel_id}/channels?session_id={session}"
    request = {
        "header": {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "username": "bench",
            "session": session,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": {
            "code": "1+1",
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        },
        "channel": "shell",
        "buffers": [],
    }
    remaining = max(deadline - time.monotonic(), 1.0)
    async with websockets.connect(ws_url, additional_headers=headers, open_timeout=remaining) as ws:
        await ws.send(json.dumps(request))
        async with asyncio.timeout(max(deadline - time.monotonic(), 1.0)):
            async for raw in ws:
                if not isinstance(raw, str):
                    continue  # binary frames carry buffers; the result comes as JSON text
                msg = json.loads(raw)
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind = msg.get("msg_type") or msg.get("header", {}).get("msg_type")
                content = msg.get("content", {})
                if kind == "execute_result":
                    value = content.get("data", {}).get("text/plain")
                    if value != "2":
                        raise BenchError(f"1+1 gave {value!r}")
                    return
                if kind == "error" or (kind == "execute_reply" and content.get("status") != "ok"):
                    raise BenchError(f"the first cell failed: {content}")
    raise BenchError("the kernel's websocket closed before the result came")


async def poll_until(
    check: Callable[[], Awaitable[bool]], timeout: float, what: str, alive: Callable[[], None] | None = None
) -> None:
    """Call ``check`` every POLL_S until it returns True; BenchError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if alive is not None:
            alive()
        if await check():
            return
        if time.monotonic() > deadline:
            raise BenchError(f"{what}: not done after {timeout:.0f} s")
        await asyncio.sleep(POLL_S)


# -- results ---------------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    times: list[float] = field(default_factory=list)
    ready: list[float] = field(default_factory=list)  # start → the server answers (then: first cell)
    error: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times)


async def measure(
    result: Result, runs: int, one_start: Callable[[bool], Awaitable[tuple[float, float]]], label: str = ""
) -> None:
    """One warm-up start (not counted), then ``runs`` measured ones, into ``result``.

    ``one_start`` returns (seconds to the first cell's result, seconds until the server answered).
    """
    print(f"[{result.name}] warm-up start …", flush=True)
    warm, _ = await one_start(True)
    print(f"[{result.name}] warm-up: {warm:.2f} s (not counted)", flush=True)
    for i in range(runs):
        t, ready = await one_start(False)
        result.times.append(t)
        result.ready.append(ready)
        print(f"[{result.name}] run {i + 1}/{runs}: {t:.2f} s (answered at {ready:.2f} s){label}", flush=True)


# -- 1. Atoll --------------------------------------------------------------------------------------


def atoll_executable() -> str:
    near = Path(sys.executable).with_name("atoll")
    if near.exists():
        return str(near)
    found = shutil.which("atoll")
    if not found:
        raise BenchError("no `atoll` executable next to this Python or on PATH (run `uv sync` first)")
    return found


def warm_ready(data_dir: Path) -> bool:
    """Whether the Atoll server over ``data_dir`` has a loaded (parked) JupyterLab process."""
    for f in (data_dir / "runtime" / ".warm").glob("*/*/parked.json"):
        info = read_json(f) or {}
        if is_same_process(info.get("pid"), info.get("start_time")):
            return True
    return False


async def bench_atoll(
    runs: int, workdir: Path, extra_env: dict[str, str] | None = None, name: str = "Atoll"
) -> Result:
    result = Result(name)
    warm = int((extra_env or {}).get("ATOLL_NOTEBOOK_WARM_POOL", "0") or 0) > 0
    port, password = free_port(), secrets.token_urlsafe(16)
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "ATOLL_DATA_DIR": str(workdir / "data"),  # created by the server itself, owner-only
        "ATOLL_PORT": str(port),
        "ATOLL_HOST": "127.0.0.1",
        "ATOLL_ADMIN_PASSWORD": password,
        "ATOLL_LOG_LEVEL": "warning",
        "ATOLL_GATEWAY_PORT": "0",  # no deploy gateway: its data plane would outlive the server
        **(extra_env or {}),
    }
    # Default settings (controller tick 1 s: opening wakes the controllers, it does not wait a tick).
    shown = extra_env or {"(defaults)": "yes"}
    result.notes.append("settings: " + ", ".join(f"{k}={v}" for k, v in shown.items()))
    server = Process([atoll_executable(), "up"], env, workdir / "atoll.log")
    try:
        server.start()
        async with httpx.AsyncClient(base_url=url, timeout=30, trust_env=False) as client:

            async def healthy() -> bool:
                try:
                    return (await client.get("/healthz", timeout=1)).status_code == 200
                except httpx.HTTPError:
                    return False

            await poll_until(healthy, 60, "atoll up", lambda: server.check_alive("atoll up"))
            resp = await client.post(
                "/api/v1/auth/tokens", json={"username": "admin", "password": password, "name": "bench"}
            )
            resp.raise_for_status()
            headers = {"Authorization": f"Bearer {resp.json()['token']}"}
            project_id = await atoll_project(client, headers)
            api = f"/api/v1/projects/{project_id}/notebook"
            base = f"{url}/nb/{project_id}/"
            phase_seconds: dict[str, list[float]] = {}

            async def pool_loaded() -> bool:
                return warm_ready(workdir / "data")

            async def one_start(warmup: bool) -> tuple[float, float]:
                if warm:  # untimed: a user who opens a notebook finds the pool refilled
                    await poll_until(pool_loaded, WARMUP_TIMEOUT_S, "a warm JupyterLab process")
                t0 = time.perf_counter()
                timeout = WARMUP_TIMEOUT_S if warmup else SERVER_TIMEOUT_S
                notebook = await atoll_open(
                    client, headers, api, timeout, server.log_tail, lambda: server.check_alive("atoll up")
                )
                answered = time.perf_counter() - t0
                await first_cell(client, base, headers, time.monotonic() + timeout)
                elapsed = time.perf_counter() - t0
                if not warmup:  # the phases before READY (the last one, READY, is still going)
                    for step in (notebook.get("timeline") or [])[:-1]:
                        if isinstance(step.get("seconds"), int | float):
                            phase_seconds.setdefault(str(step.get("phase")), []).append(
                                float(step["seconds"])
                            )
                await atoll_stop(client, headers, api)
                return elapsed, answered

            try:
                await measure(result, runs, one_start)
            finally:
                if server.alive():  # a failed run may have left the server up: stop it through Atoll
                    with contextlib.suppress(httpx.HTTPError, BenchError):
                        await atoll_stop(client, headers, api)
            for phase, secs in phase_seconds.items():
                result.notes.append(f"timeline {phase}: median {statistics.median(secs):.2f} s")
    except BenchError as exc:
        result.error = str(exc)
    except (httpx.HTTPError, OSError, TimeoutError, websockets.WebSocketException) as exc:
        result.error = f"{type(exc).__name__}: {exc}\n{server.log_tail()}"
    finally:
        server.stop()
    return result


async def atoll_project(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    """A fresh community and project whose default configuration fits this machine."""
    resp = await client.get("/api/v1/organizations", headers=headers)
    resp.raise_for_status()
    org = resp.json()["items"][0]["id"]
    suffix = secrets.token_hex(3)
    resp = await client.post(
        "/api/v1/communities", headers=headers, json={"organizationId": org, "name": f"bench-{suffix}"}
    )
    resp.raise_for_status()
    resp = await client.post(
        "/api/v1/projects",
        headers=headers,
        json={
            "communityId": resp.json()["id"],
            "name": f"bench-nb-{suffix}",
            "settings": {"defaultConfiguration": CONFIGURATION},
        },
    )
    resp.raise_for_status()
    return str(resp.json()["id"])


async def atoll_open(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    api: str,
    timeout: float,
    log_tail: Callable[[], str],
    alive: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Open the project's notebook (``api``: its /notebook URL) and wait until it is READY; the
    notebook as last seen (its timeline says how long each phase took)."""
    resp = await client.post(api + "/open", headers=headers, json={"configuration": CONFIGURATION})
    if resp.status_code == 404:
        raise BenchError(
            f"POST {api}/open → 404: does this Atoll have the notebook API yet? {resp.text[:300]}"
        )
    if resp.status_code not in (200, 201, 202):
        raise BenchError(f"POST {api}/open → HTTP {resp.status_code}: {resp.text[:500]}")
    notebook: dict[str, Any] = resp.json()

    async def ready() -> bool:
        nonlocal notebook
        if notebook.get("state") == "READY":
            return True
        r = await client.get(api, headers=headers)
        r.raise_for_status()
        notebook = r.json()
        if notebook.get("state") in ("FAILED", "STOPPED"):
            raise BenchError(
                f"the notebook went {notebook['state']}: "
                f"{notebook.get('detail') or notebook.get('stopReason')}\n{log_tail()}"
            )
        return notebook.get("state") == "READY"

    await poll_until(ready, timeout, "notebook READY", alive)
    return notebook


async def atoll_stop(client: httpx.AsyncClient, headers: dict[str, str], api: str) -> None:
    resp = await client.post(api + "/stop", headers=headers)
    if resp.status_code >= 400:
        raise BenchError(f"POST {api}/stop → HTTP {resp.status_code}: {resp.text[:300]}")

    async def stopped() -> bool:
        r = await client.get(api, headers=headers)
        return r.status_code == 404 or r.json().get("state") in ("STOPPED", "FAILED", "NONE")

    await poll_until(stopped, 60, "notebook STOPPED")


# -- 2. plain jupyter lab --------------------------------------------------------------------------


async def bench_plain(runs: int, workdir: Path) -> Result:
    result = Result("plain jupyter lab")
    print("[plain jupyter lab] notebook environment (built once, cached) …", flush=True)
    environment = await asyncio.to_thread(notebook_environment, EnvironmentBuilder(ATOLL_ENVS_DIR))
    root = workdir / "root"
    root.mkdir()
    procs: list[Process] = []

    async def one_start(warmup: bool) -> tuple[float, float]:
        port, token = free_port(), secrets.token_urlsafe(24)
        argv, jenv = jupyter_command(environment.python, port, "/", root, token, workdir / "state")
        # Plain: kernels start as Jupyter starts them, not forked from Atoll's kernel zygote.
        env = {**environment.activate(os.environ), **jenv, "ATOLL_KERNEL_ZYGOTE": "0"}
        base, headers = f"http://127.0.0.1:{port}/", {"Authorization": f"token {token}"}
        lab = Process(argv, env, workdir / "jupyter.log", cwd=root)
        procs.append(lab)
        timeout = WARMUP_TIMEOUT_S if warmup else SERVER_TIMEOUT_S
        async with httpx.AsyncClient(timeout=10, trust_env=False) as client:

            async def ready() -> bool:
                try:
                    return (await client.get(base + "api/status", headers=headers)).status_code == 200
                except httpx.HTTPError:
                    return False

            try:
                t0 = time.perf_counter()
                lab.start()
                await poll_until(ready, timeout, "jupyter lab", lambda: lab.check_alive("jupyter lab"))
                answered = time.perf_counter() - t0
                await first_cell(client, base, headers, time.monotonic() + timeout)
                return time.perf_counter() - t0, answered
            finally:
                lab.stop()

    try:
        await measure(result, runs, one_start)
    except BenchError as exc:
        result.error = str(exc)
    except (httpx.HTTPError, OSError, TimeoutError, websockets.WebSocketException) as exc:
        result.error = f"{type(exc).__name__}: {exc}\n{procs[-1].log_tail() if procs else ''}"
    finally:
        for p in procs:
            p.stop()
    return result


# -- 3. JupyterHub ---------------------------------------------------------------------------------


def hub_environment() -> Path:
    """A venv with JupyterHub and the notebook pins, built with uv once (cached by content)."""
    builder = EnvironmentBuilder(CACHE / "envs")
    # The same notebook packages, and the same one left out, as Atoll's: JupyterHub's single-user
    # servers then import exactly what Atoll's do.
    env = builder.build(
        current_version(),
        [JUPYTERHUB_REQUIREMENT, *builtins.DEFAULT.requirements()],
        excludes=builtins.EXCLUDES,
    )
    return env.bin_dir


def proxy_executable() -> Path:
    """configurable-http-proxy, npm-installed once into a cache dir named after its package.json."""
    package = BENCH_DIR / "jupyterhub" / "package.json"
    digest = hashlib.sha256(package.read_bytes()).hexdigest()[:16]
    target = CACHE / f"chp-{digest}"
    exe = target / "node_modules" / ".bin" / "configurable-http-proxy"
    if exe.exists():
        return exe
    npm = shutil.which("npm")
    if npm is None:
        raise BenchError("npm is not installed: JupyterHub needs configurable-http-proxy (or use --skip-hub)")
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="chp-", dir=CACHE))
    try:
        shutil.copy(package, tmp / "package.json")
        proc = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if proc.returncode != 0:
            raise BenchError(f"npm install configurable-http-proxy failed:\n{proc.stderr[-2000:]}")
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return exe


HUB_CONFIG = """\
# Written by bench/notebooks.py for one benchmark run.
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {proxy_port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.JupyterHub.db_url = "sqlite:///{workdir}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{workdir}/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = "{workdir}/jupyterhub.pid"
c.JupyterHub.cleanup_servers = True
c.ConfigurableHTTPProxy.command = ["{proxy}"]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.pid_file = "{workdir}/proxy.pid"
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = "{password}"
c.Authenticator.allowed_users = {{"{user}"}}
c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
c.SimpleLocalProcessSpawner.home_dir_template = "{workdir}/home/{{username}}"
c.Spawner.ip = "127.0.0.1"
c.Spawner.cmd = ["{singleuser}"]
c.Spawner.args = {args}
c.Spawner.default_url = "/lab"
c.Spawner.environment = {environment}
c.JupyterHub.services = [{{"name": "bench", "api_token": "{token}"}}]
c.JupyterHub.load_roles = [
    {{
        "name": "bench",
        "scopes": ["admin:users", "admin:servers", "admin:server_state", "access:servers"],
        "services": ["bench"],
    }}
]
"""


async def bench_hub(runs: int, workdir: Path) -> Result:
    result = Result("JupyterHub")
    hub: Process | None = None
    spawned: set[int] = set()  # single-user server pids, from the spawner's state
    try:
        print("[JupyterHub] hub venv and configurable-http-proxy (built once, cached) …", flush=True)
        bin_dir = await asyncio.to_thread(hub_environment)
        proxy = await asyncio.to_thread(proxy_executable)
        proxy_port, hub_port, proxy_api_port = free_port(), free_port(), free_port()
        token = secrets.token_hex(32)
        state = workdir / "home" / HUB_USER / ".jupyter-state"
        user_env = {
            "JUPYTER_CONFIG_DIR": str(state / "config"),
            "JUPYTER_DATA_DIR": str(state / "data"),
            "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
            "JUPYTER_PLATFORM_DIRS": "1",
            "IPYTHONDIR": str(state / "ipython"),
        }
        args = ["--allow-root"] if os.geteuid() == 0 else []
        config = workdir / "jupyterhub_config.py"
        config.write_text(
            HUB_CONFIG.format(
                proxy_port=proxy_port,
                hub_port=hub_port,
                proxy_api_port=proxy_api_port,
                workdir=workdir,
                proxy=proxy,
                password=secrets.token_urlsafe(12),
                user=HUB_USER,
                singleuser=bin_dir / "jupyterhub-singleuser",
                args=json.dumps(args),
                environment=json.dumps(user_env),
                token=token,
            )
        )
        env = dict(os.environ)
        env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", "")])
        env.pop("VIRTUAL_ENV", None)
        env["ATOLL_BENCH_WORKDIR"] = str(workdir)
        hub = Process(
            [str(bin_dir / "jupyterhub"), "-f", str(config)], env, workdir / "jupyterhub.log", workdir
        )
        hub.start()
        url = f"http://127.0.0.1:{proxy_port}"
        headers = {"Authorization": f"token {token}"}
        user_api = f"{url}/hub/api/users/{HUB_USER}"
        async with httpx.AsyncClient(timeout=30, trust_env=False) as client:

            def hub_alive() -> None:
                hub.check_alive("jupyterhub")

            async def hub_up() -> bool:
                try:
                    return (await client.get(f"{url}/hub/api/", timeout=2)).status_code == 200
                except httpx.HTTPError:
                    return False

            await poll_until(hub_up, 120, "jupyterhub start", hub_alive)

            async def server_model() -> dict[str, Any]:
                r = await client.get(user_api, headers=headers)
                r.raise_for_status()
                servers: dict[str, Any] = r.json().get("servers") or {}
                return dict(servers.get("", {}))

            async def note_pid() -> None:
                """Remember the single-user server's pid (spawner state), to clean up after a crash."""
                pid = (await server_model()).get("state", {}).get("pid")
                if isinstance(pid, int):
                    spawned.add(pid)

            async def one_start(warmup: bool) -> tuple[float, float]:
                timeout = WARMUP_TIMEOUT_S if warmup else SERVER_TIMEOUT_S
                t0 = time.perf_counter()
                resp = await client.post(f"{user_api}/server", headers=headers)
                if resp.status_code not in (201, 202):
                    raise BenchError(f"POST {user_api}/server → HTTP {resp.status_code}: {resp.text[:300]}")

                async def ready() -> bool:
                    model = await server_model()
                    if not model:  # the spawn failed and the hub dropped the server
                        raise BenchError(f"the single-user server did not start:\n{hub.log_tail()}")
                    return bool(model.get("ready"))

                if resp.status_code == 202:
                    await poll_until(ready, timeout, "single-user server", hub_alive)
                answered = time.perf_counter() - t0
                await first_cell(client, f"{url}/user/{HUB_USER}/", headers, time.monotonic() + timeout)
                elapsed = time.perf_counter() - t0
                await note_pid()
                resp = await client.delete(f"{user_api}/server", headers=headers)
                if resp.status_code not in (202, 204):
                    raise BenchError(f"DELETE {user_api}/server → HTTP {resp.status_code}: {resp.text[:300]}")

                async def stopped() -> bool:
                    return not await server_model()

                await poll_until(stopped, 60, "single-user server stop", hub_alive)
                return elapsed, answered

            try:
                await measure(result, runs, one_start)
            finally:
                if hub.alive():
                    with contextlib.suppress(httpx.HTTPError):
                        await note_pid()  # a server left running by a failed run
    except BenchError as exc:
        result.error = str(exc)
    except (httpx.HTTPError, OSError, TimeoutError, websockets.WebSocketException) as exc:
        result.error = f"{type(exc).__name__}: {exc}\n{hub.log_tail() if hub else ''}"
    finally:
        if hub is not None:
            hub.stop()  # SIGTERM: the hub stops its servers and its proxy (own sessions)
        proxy_pid = _read_pid(workdir / "proxy.pid")  # removed by the hub when it stopped the proxy
        if proxy_pid is not None:
            spawned.add(proxy_pid)
        for pid in spawned:  # anything the hub left behind: only processes it started for us
            if _started_here(pid, workdir):
                kill_group(pid, signal.SIGKILL)
    return result


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _started_here(pid: int, workdir: Path) -> bool:
    """Whether ``pid`` is still a process of this run (guards against a reused pid).

    The proxy inherits ATOLL_BENCH_WORKDIR from the hub; single-user servers get their Jupyter
    dirs under the work dir through the spawner's environment.
    """
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return str(workdir) in environ


# -- report ----------------------------------------------------------------------------------------


def report(results: list[Result]) -> bool:
    """Print the table, ratios and targets; True when every contender that ran was measured."""
    print()
    print(f"{'contender':<20} {'runs':>4} {'median':>8} {'min':>8} {'max':>8}   (seconds, open → 1+1 result)")
    for r in results:
        if r.error:
            print(f"{r.name:<20} FAILED: {r.error.splitlines()[0] if r.error else ''}")
        else:
            lo, hi = min(r.times), max(r.times)
            print(f"{r.name:<20} {len(r.times):>4} {r.median:>8.2f} {lo:>8.2f} {hi:>8.2f}")
            ready = statistics.median(r.ready)
            print(f"{'':<20}   answered: median {ready:.2f} s, first cell {r.median - ready:.2f} s more")
        for note in r.notes:
            print(f"{'':<20}   {note}")
    by_name = {r.name: r for r in results if not r.error and r.times}
    atoll, plain, hub = by_name.get("Atoll"), by_name.get("plain jupyter lab"), by_name.get("JupyterHub")
    warm = by_name.get(WARM_NAME)
    print()
    for a, b in ((atoll, plain), (atoll, hub), (warm, plain), (warm, hub), (hub, plain)):
        if a and b:
            ratio = f"{a.name} / {b.name}:"
            print(f"{ratio:<36} {a.median / b.median:.2f}×  ({a.median - b.median:+.2f} s)")
    if atoll or warm:
        print()
        print("Targets (issue 4), on the median:")
    if warm:
        met = "met" if warm.median <= WARM_POOL_TARGET_S else "NOT met"
        print(f"  with a warm pool: within {WARM_POOL_TARGET_S:.0f} s → {warm.median:.2f} s, {met}")
    if atoll and plain:
        limit = plain.median + PLAIN_MARGIN_S
        met = "met" if atoll.median <= limit else "NOT met"
        print(
            f"  without one: ≤ plain jupyter lab + {PLAIN_MARGIN_S:.0f} s = {limit:.2f} s → "
            f"{atoll.median:.2f} s, {met}"
        )
    if warm:
        print("Targets (issue 18), on the median:")
        met = "met" if warm.median <= WARM_FIRST_CELL_TARGET_S else "NOT met"
        print(f"  with a warm pool: first cell ≤ {WARM_FIRST_CELL_TARGET_S} s → {warm.median:.2f} s, {met}")
        if hub:
            times = hub.median / warm.median
            met = "met" if times >= HUB_TIMES_TARGET else "NOT met"
            print(f"  with a warm pool: ≥ {HUB_TIMES_TARGET:.0f}× JupyterHub's speed → {times:.1f}×, {met}")
    for r in results:
        if r.error:
            print(f"\n{r.name} failed:\n{r.error}", file=sys.stderr)
    return all(not r.error for r in results)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3, help="measured starts per contender (default 3)")
    parser.add_argument("--skip-hub", action="store_true", help="no JupyterHub (no npm / no network)")
    parser.add_argument("--skip-atoll", action="store_true", help="only the baselines")
    parser.add_argument(
        "--skip-warm", action="store_true", help="no second Atoll run with a warm pool of one process"
    )
    parser.add_argument(
        "--atoll-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an extra ATOLL_* setting for the Atoll server (repeatable), e.g. ATOLL_CONTROLLER_TICK_S=1",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs) instead of deleting it")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if any("=" not in item for item in args.atoll_env):
        parser.error("--atoll-env takes KEY=VALUE")

    workdir = Path(tempfile.mkdtemp(prefix="atoll-bench-nb-"))
    workdir.chmod(0o755)  # Atoll may run a project's server as the project's own uid
    contenders: list[tuple[str, Callable[[int, Path], Awaitable[Result]]]] = []
    if not args.skip_atoll:
        atoll_env = dict(item.split("=", 1) for item in args.atoll_env)
        cold_env = {"ATOLL_NOTEBOOK_WARM_POOL": "0", **atoll_env}
        warm_env = {"ATOLL_NOTEBOOK_WARM_POOL": "1", **atoll_env}
        contenders.append(("atoll", lambda runs, sub: bench_atoll(runs, sub, cold_env)))
        if not args.skip_warm:
            contenders.append(("atoll-warm", lambda runs, sub: bench_atoll(runs, sub, warm_env, WARM_NAME)))
    contenders.append(("plain", bench_plain))
    if not args.skip_hub:
        contenders.append(("hub", bench_hub))
    results = []
    try:
        for name, bench in contenders:
            sub = workdir / name
            sub.mkdir(mode=0o755)
            results.append(await bench(args.runs, sub))
    finally:
        remove_networks(workdir)  # the servers are stopped: their project networks go too
        if args.keep:
            print(f"\nlogs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if report(results) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
