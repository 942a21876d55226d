"""A private container registry for the tests: Debian's `docker-registry` (the distribution
registry) on a free loopback port, its storage in a temp dir, stopped by its process group.
dockerd treats a registry on 127.0.0.0/8 as insecure (plain HTTP) by default, so pushes need no
TLS and no daemon setting."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.leaks import register_root
from tests.support.postgres import free_port


@dataclass
class Registry:
    address: str  # host:port, what ATOLL_IMAGE_REGISTRY takes

    def catalog(self) -> list[str]:
        r = httpx.get(f"http://{self.address}/v2/_catalog", timeout=10)
        r.raise_for_status()
        return list(r.json().get("repositories") or [])

    def tags(self, repository: str) -> list[str]:
        r = httpx.get(f"http://{self.address}/v2/{repository}/tags/list", timeout=10)
        return list(r.json().get("tags") or []) if r.status_code == 200 else []


def _bcrypt(password: str) -> str:
    """An htpasswd entry's hash (the registry takes bcrypt only): libxcrypt's, through the
    standard library's crypt (deprecated, still here on 3.11; no dependency for one test)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt

        return str(crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH)))  # noqa: S324 - bcrypt


@contextlib.contextmanager
def registry_or_skip(host: str = "127.0.0.1", login: tuple[str, str] | None = None) -> Iterator[Registry]:
    """A registry on ``host`` (loopback, or an address of a bridge the test made); ``login``: it
    asks for that user name and password (htpasswd), else for nothing."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.skip("docker-registry is not installed (apt-get install docker-registry; ./dev test does)")
    base = Path(tempfile.mkdtemp(prefix="atoll-registry-", dir="/tmp"))
    register_root(base)
    port = free_port()
    config = base / "config.yml"
    auth = ""
    if login is not None:
        (base / "htpasswd").write_text(f"{login[0]}:{_bcrypt(login[1])}\n")
        auth = f"auth:\n  htpasswd:\n    realm: atoll-tests\n    path: {base / 'htpasswd'}\n"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {base / 'data'}\n"
        f"http:\n  addr: {host}:{port}\n" + auth
    )
    with (base / "registry.log").open("wb") as out:
        proc = subprocess.Popen(
            [binary, "serve", str(config)],
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        reg = Registry(f"{host}:{port}")
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"docker-registry exited: {(base / 'registry.log').read_text()[-500:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://{reg.address}/v2/", timeout=2).status_code in (200, 401):
                    break
            assert time.monotonic() < deadline, (base / "registry.log").read_text()[-500:]
            time.sleep(0.1)
        yield reg
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        shutil.rmtree(base, ignore_errors=True)
