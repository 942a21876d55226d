"""Atoll's own container registry, where projects' images are kept when no other is set.

It is Debian's `docker-registry` (the distribution registry, which serves the registry protocol)
over DATA_DIR/registry, on 127.0.0.1 only, started by the images controller when the first image
is to be pushed and stopped, by its process group, with the server. The Docker daemon pushes to a
registry on 127.0.0.0/8 over plain HTTP without any setting. Workloads do not reach it: a
project's network namespace relays only the API's and the gateway's ports to the host's loopback,
and a container's loopback is its own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

_START_S = 15.0


class RegistryUnavailable(RuntimeError):
    """The local registry cannot run here; the message says why and what to do."""


class LocalRegistry:
    def __init__(self, directory: Path, port: int, binary: str | None = None) -> None:
        self.directory = Path(directory)
        self.port = port
        self.binary = binary
        self.address = f"127.0.0.1:{port}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.address}/v2/", timeout=2) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def ensure(self) -> str:
        """The registry's address, once it answers (started now if it does not run)."""
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                return self.address
            binary = self.binary or shutil.which("docker-registry")
            if binary is None:
                raise RegistryUnavailable(
                    "docker-registry is not installed (apt-get install docker-registry), and "
                    "ATOLL_IMAGE_REGISTRY names no other registry"
                )
            if self._answers():
                raise RegistryUnavailable(
                    f"something else answers on {self.address}: set ATOLL_IMAGE_REGISTRY_PORT to a free port"
                )
            self.directory.mkdir(parents=True, exist_ok=True)
            os.chmod(self.directory, 0o700)
            config = self.directory / "config.yml"
            config.write_text(
                "version: 0.1\n"
                "log:\n  level: warn\n"
                f"storage:\n  filesystem:\n    rootdirectory: {self.directory / 'data'}\n"
                f"http:\n  addr: {self.address}\n"
            )
            with (self.directory / "registry.log").open("ab") as out:
                self._proc = subprocess.Popen(
                    [binary, "serve", str(config)],
                    stdout=out,
                    stderr=out,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,  # its own group: stopped as one, never by name
                )
            deadline = time.monotonic() + _START_S
            while not self._answers():
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    tail = (self.directory / "registry.log").read_text(errors="replace").strip()[-300:]
                    self._stop()
                    raise RegistryUnavailable(f"the local registry on {self.address} did not start: {tail}")
                time.sleep(0.1)
            return self.address

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def close(self) -> None:
        with self._lock:
            self._stop()
