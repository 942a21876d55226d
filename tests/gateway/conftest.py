"""A real JupyterLab behind a real NotebookProxy served by uvicorn, both on free loopback ports."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount

from atoll.envs.build import EnvironmentBuilder
from atoll.gateway.proxy import NotebookProxy, Upstream
from atoll.notebooks.server import jupyter_command, notebook_environment, wait_ready
from tests.support.postgres import free_port
from tests.support.server import ENV_CACHE

# Stable across runs, so only the first run pays for building JupyterLab's environment.


@dataclass
class Jupyter:
    url: str  # including the base_url prefix, no trailing slash
    token: str
    root_dir: Path
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class Gateway:
    url: str  # the proxy's origin, e.g. http://127.0.0.1:PORT


# Package scope: JupyterLab stops when this folder's tests end, not with the whole session.
@pytest.fixture(scope="package")
def jupyter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jupyter]:
    env = notebook_environment(EnvironmentBuilder(ENV_CACHE))
    base = tmp_path_factory.mktemp("jupyter")
    root_dir, state_dir = base / "project", base / "state"
    root_dir.mkdir()
    port, token = free_port(), secrets.token_hex(24)
    argv, jenv = jupyter_command(env.python, port, "/nb/p1/", root_dir, token, state_dir)
    log_path = base / "jupyter.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            argv,
            env=env.activate({**os.environ, **jenv}),
            cwd=root_dir,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped with its kernels, by group id
        )
    server = Jupyter(f"http://127.0.0.1:{port}/nb/p1", token, root_dir, log_path)
    try:
        asyncio.run(wait_ready(server.url, token, timeout=60))
        yield server
    except TimeoutError:
        pytest.fail(f"JupyterLab did not start:\n{server.log()[-4000:]}")
    finally:
        _stop_group(proc)


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    # kernels share the group; take down anything left of it
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="package")
def gateway(jupyter: Jupyter) -> Iterator[Gateway]:
    upstream = Upstream(jupyter.url, {"Authorization": f"token {jupyter.token}"})

    async def resolve(conn: HTTPConnection) -> Upstream | Response:
        if conn.path_params.get("project") == "p1":
            return upstream
        return PlainTextResponse("no such project", status_code=404)

    proxy = NotebookProxy(resolve)

    @asynccontextmanager
    async def lifespan(app: Starlette):  # type: ignore[no-untyped-def]
        yield
        await proxy.aclose()

    app = Starlette(routes=[Mount("/nb/{project}", app=proxy)], lifespan=lifespan)
    with serve(app) as url:
        yield Gateway(url)


@contextmanager
def serve(app: Starlette) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread on a free loopback port; yield its origin."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
