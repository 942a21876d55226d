"""Real models (scikit-learn, ONNX via skl2onnx, noop) and the real model server as a process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from atoll.models import serialize
from tests.support.postgres import free_port

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Data:
    x: np.ndarray
    y: np.ndarray


@pytest.fixture(scope="session")
def iris_like() -> Data:
    """Three classes in four features, iris-shaped random data."""
    rng = np.random.default_rng(7)
    y = rng.integers(0, 3, size=150)
    x = rng.normal(size=(150, 4)) + y[:, None] * np.array([1.0, -0.5, 2.0, 0.3])
    return Data(x, y)


@pytest.fixture(scope="session")
def logreg(iris_like: Data) -> LogisticRegression:
    return LogisticRegression(max_iter=1000).fit(iris_like.x, iris_like.y)


@pytest.fixture(scope="session")
def onnx_model(logreg: LogisticRegression, iris_like: Data) -> Any:
    from skl2onnx import to_onnx

    return to_onnx(logreg, iris_like.x[:1].astype(np.float32), options={id(logreg): {"zipmap": False}})


@pytest.fixture(scope="session")
def model_dirs(
    tmp_path_factory: pytest.TempPathFactory, logreg: LogisticRegression, onnx_model: Any
) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("served")
    serialize(logreg, root / "iris")
    serialize(onnx_model, root / "iris-onnx")
    noop = root / "echo"
    noop.mkdir()
    (noop / "meta.json").write_text(
        json.dumps(
            {
                "format": "noop",
                "version": 4,
                "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
                "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 4]}],
            }
        )
    )
    text = root / "echo-text"
    text.mkdir()
    spec = [{"name": "text", "datatype": "BYTES", "shape": [-1, 2]}]
    (text / "meta.json").write_text(json.dumps({"format": "noop", "inputs": spec, "outputs": spec}))
    return {"iris": root / "iris", "iris-onnx": root / "iris-onnx", "echo": noop, "echo-text": text}


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        return self.proc.returncode


def call(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - our own local server
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def start(models: dict[str, Path], log_path: Path, *extra: str, ready_timeout: float = 30) -> Server:
    port = free_port()
    args = [sys.executable, "-m", "atoll.serving", "--host", "127.0.0.1", "--port", str(port)]
    for name, directory in models.items():
        args += ["--model", f"{name}={directory}"]
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [*args, *extra], stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True
    )
    server = Server(proc, port, log_path)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"model server exited with {proc.returncode}:\n{server.log()}")
        try:
            if call("GET", server.url + "/v2/health/ready")[0] == 200:
                return server
        except OSError:
            pass
        time.sleep(0.05)
    server.stop(signal.SIGKILL)
    raise AssertionError(f"model server not ready in {ready_timeout} s:\n{server.log()}")


@pytest.fixture(scope="module")
def server(model_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start(model_dirs, tmp_path_factory.mktemp("server") / "server.log")
    try:
        yield s
    finally:
        s.stop(signal.SIGKILL)
