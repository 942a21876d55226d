"""atoll.models and atoll.serving run in a user's environment without Atoll's dependencies.

A fresh venv gets only SERVING_REQUIREMENTS; PYTHONPATH is a directory holding only a link
`atoll` to the package, as Atoll sets it up for workloads. There the modules import, pull in
nothing of Atoll's own stack, and the server serves a noop model over HTTP and gRPC (what the
gRPC face needs is in SERVING_REQUIREMENTS too) and stops cleanly on SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tritonclient.grpc as tgrpc

import atoll
from atoll.envs.build import default_uv
from atoll.serving import SERVING_REQUIREMENTS
from tests.serving.conftest import call
from tests.support.postgres import free_port

CHECK = """
import sys
import atoll.models, atoll.serving, atoll.serving.server, atoll.serving.app, atoll.serving.formats
import atoll.serving.boosting, atoll.serving.protocol, atoll.serving.httpserver, atoll.serving.grpcserver
heavy = ["fastapi", "starlette", "pydantic", "sqlalchemy", "httpx", "typer", "rich", "yaml", "uvicorn",
         "sklearn", "onnx", "onnxruntime", "joblib", "torch", "xgboost", "prometheus_client"]
loaded = sorted(m for m in heavy if m in sys.modules)
assert not loaded, f"imported {loaded}"
import importlib.util
assert importlib.util.find_spec("fastapi") is None and importlib.util.find_spec("pydantic") is None
assert atoll.models.__file__.startswith(sys.argv[1]), atoll.models.__file__
print("ok", sys.version_info[:2])
"""


def _python(version: str | None) -> str:
    """An interpreter of `version` (None: the one running the tests), or skip."""
    if version is None:
        return sys.executable
    found = subprocess.run(
        [str(default_uv()), "python", "find", version],
        capture_output=True,
        text=True,
        env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
    )
    if found.returncode != 0:
        pytest.skip(f"no Python {version} on this machine")
    return found.stdout.strip()


@pytest.mark.parametrize("version", [None, "3.10"], ids=["this-python", "python3.10"])
def test_sdk_and_server_in_a_bare_environment(version: str | None, tmp_path: Path) -> None:
    uv = str(default_uv())
    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "--quiet", "--python", _python(version), str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", str(python), *SERVING_REQUIREMENTS], check=True
    )
    sdk = tmp_path / "sdk"
    sdk.mkdir()
    (sdk / "atoll").symlink_to(Path(atoll.__file__).parent, target_is_directory=True)
    # Only what a workload gets: no Atoll venv, no user site, not this repository as cwd.
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "PYTHONPATH": str(sdk), "HOME": str(tmp_path)}

    checked = subprocess.run(
        [str(python), "-s", "-c", CHECK, str(sdk)], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("ok")

    model = tmp_path / "echo"
    model.mkdir()
    spec = [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    (model / "meta.json").write_text(json.dumps({"format": "noop", "inputs": spec, "outputs": spec}))
    port, grpc_port = free_port(), free_port()
    log = tmp_path / "server.log"
    serve = ["-m", "atoll.serving", "--port", str(port), "--grpc-port", str(grpc_port)]
    proc = subprocess.Popen(
        [str(python), "-s", *serve, "--model", f"echo={model}"],
        env=env,
        cwd=tmp_path,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if call("GET", url + "/v2/health/ready")[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)
        body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": ["hé", "lo"]}]}
        status, answer = call("POST", url + "/v2/models/echo/infer", json.dumps(body).encode())
        assert status == 200, log.read_text()
        assert json.loads(answer)["outputs"][0]["data"] == ["hé", "lo"]
        with tgrpc.InferenceServerClient(f"127.0.0.1:{grpc_port}") as client:
            assert client.is_server_ready() and client.is_model_ready("echo")
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert f"serving models echo(1) on 127.0.0.1:{port}" in log.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
