"""Ray Serve for bench/gateway.py: a one-replica no-op deployment answering the OIP v2 infer request
with the same JSON as Atoll's noop model, on a Ray 2.60 head started for this run only.

Ray is not a project dependency here: ``ray[serve]`` is installed with uv into a venv under
``~/.cache/atoll-bench/envs`` (built once). The head runs as ``ray start --head --block`` in its own
session with every port of its own chosen free outside 10002–19999 (Ray's worker ports), bound to
127.0.0.1. It is stopped by its process group, then every process that still carries this run's
marker in its environment is killed by pid. ``ray stop`` is not used: it stops every Ray process
on the machine, other people's clusters included.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
from procs import BenchError, Process, cpu_seconds, free_port, with_marker

from atoll.envs.build import EnvironmentBuilder

RAY_REQUIREMENT = "ray[serve]==2.60.0"
RAY_PYTHON = "3.11"
MARKER_VAR = "ATOLL_BENCH_RAY"

DEPLOY = '''\
"""Deploy the no-op Serve application (written by bench/gateway.py)."""
import sys

import ray
from ray import serve
from starlette.requests import Request

address, http_port, max_ongoing = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])


@serve.deployment
class Noop:
    """Echoes the first input as output__0, in the shape Atoll's noop model answers."""

    async def __call__(self, request: Request) -> dict:
        x = (await request.json())["inputs"][0]
        return {
            "model_name": "noop",
            "model_version": "1",
            "outputs": [
                {"name": "output__0", "datatype": x["datatype"], "shape": x["shape"], "data": x["data"]}
            ],
        }


ray.init(address=address, log_to_driver=False)
serve.start(http_options={"host": "127.0.0.1", "port": http_port})
app = Noop.options(max_ongoing_requests=max_ongoing, num_replicas=1).bind()
serve.run(app, name="noop", route_prefix="/", blocking=False)
print("deployed", flush=True)
'''


def ray_bin(cache: Path) -> Path:
    """The bin dir of a venv with ray[serve], built with uv once (cached by its requirements)."""
    return EnvironmentBuilder(cache).build(RAY_PYTHON, [RAY_REQUIREMENT]).bin_dir


class RayServe:
    """A Ray head plus the Serve application, for one run."""

    def __init__(self, workdir: Path, cache: Path, max_ongoing: int) -> None:
        self.workdir = workdir
        self.cache = cache
        self.max_ongoing = max_ongoing
        self.marker = f"{workdir}/ray"
        self._needle = f"{MARKER_VAR}={self.marker}\0"
        self.head: Process | None = None
        self.http_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}/v2/models/noop/infer"
        self.setup = (
            f"Ray {RAY_REQUIREMENT.split('==')[1]}, 1 replica, max_ongoing_requests={max_ongoing}, "
            f"head --num-cpus 2, Serve HTTP proxy on 127.0.0.1"
        )

    def start(self, body: str) -> None:
        bin_dir = ray_bin(self.cache)
        temp = self.workdir / "ray"
        temp.mkdir()
        env = {
            **os.environ,
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # without it Ray binds the external interface
            "RAY_USAGE_STATS_ENABLED": "0",
            MARKER_VAR: self.marker,
        }
        env.pop("VIRTUAL_ENV", None)
        gcs = free_port()
        ports = {
            "--port": gcs,
            "--dashboard-port": free_port(),
            "--ray-client-server-port": free_port(),
            "--dashboard-agent-listen-port": free_port(),
            "--dashboard-agent-grpc-port": free_port(),
            "--runtime-env-agent-port": free_port(),
            "--metrics-export-port": free_port(),
            "--node-manager-port": free_port(),
            "--object-manager-port": free_port(),
        }
        argv = [
            str(bin_dir / "ray"), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
            "--dashboard-host", "127.0.0.1", "--num-cpus", "2", "--disable-usage-stats",
            "--temp-dir", str(temp),
        ]  # fmt: skip
        for k, v in ports.items():
            argv += [k, str(v)]
        self.head = Process(argv, env, self.workdir / "ray-head.log").start()
        script = self.workdir / "ray_deploy.py"
        script.write_text(DEPLOY)
        deadline = time.monotonic() + 180
        deployer = None
        while True:  # the driver connects once the head is up; a refused connect is retried
            self.head.check_alive("ray start --head")
            deployer = Process(
                [str(bin_dir / "python"), str(script), f"127.0.0.1:{gcs}", str(self.http_port),
                 str(self.max_ongoing)],
                env, self.workdir / "ray-deploy.log",
            ).start()  # fmt: skip
            assert deployer.proc is not None
            try:
                code = deployer.proc.wait(timeout=max(deadline - time.monotonic(), 1))
            finally:
                deployer.stop(grace_s=5)
            if code == 0:
                break
            if time.monotonic() > deadline:
                raise BenchError(f"deploying the Ray Serve app failed:\n{deployer.log_tail()}")
            time.sleep(1)
        with httpx.Client(timeout=5, trust_env=False) as c:
            while True:
                try:
                    r = c.post(self.url, content=body, headers={"content-type": "application/json"})
                    if r.status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise BenchError(f"Ray Serve did not answer the infer request:\n{self.head.log_tail()}")
                time.sleep(0.5)

    def cpu_seconds(self) -> float:
        """CPU seconds of every live process of this Ray cluster (GCS, raylet, proxy, replica…)."""
        return sum(cpu_seconds(pid) for pid in with_marker(self._needle))

    def stop(self) -> None:
        if self.head is not None:
            # `ray start --block` stops what it started on SIGTERM, after draining for up to 30 s;
            # a throwaway cluster needs no drain: what is left after 5 s is killed.
            self.head.stop(grace_s=5)
        for _ in range(2):  # whatever outlived it (workers, agents): ours only, by pid
            left = with_marker(self._needle)
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            if not left:
                break
            time.sleep(0.5)
