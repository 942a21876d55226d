"""A private Ray cluster on this machine, for development, the test suite and the benchmarks: a
head and any number of worker nodes, each a ``ray start --block`` in its own session, stopped by
process group (never ``ray stop``, which stops every Ray process on the machine).

Each node gets its own loopback address (127.0.0.2, 127.0.0.3, ...): Ray rewrites 127.0.0.1 and
"localhost" to the machine's external address when nodes join, but leaves other loopback addresses
alone, so the cluster stays on loopback and its nodes still have distinct addresses, as on VMs.
Every port Ray opens is chosen here (free, outside Ray's worker range 10002-19999), so two
clusters on one machine do not collide.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from atoll.runtime.local.runtime import LocalRuntime
from atoll.storage.logs import LogStore

WORKER_PORTS = range(10002, 20000)


def free_port(host: str = "127.0.0.1") -> int:
    """A free TCP port outside Ray's worker range."""
    while True:
        with socket.socket() as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if port not in WORKER_PORTS:
            return port


def ray_executable() -> str:
    """The ``ray`` script beside this Python (the venv Atoll runs in)."""
    path = Path(sys.executable).with_name("ray")
    if not path.exists():
        raise RuntimeError(f"{path} not found: install Atoll with the ray extra (pip install 'atoll[ray]')")
    return str(path)


@dataclass
class LocalNode:
    address: str  # its loopback address
    process: subprocess.Popen[bytes]
    log: Path


@dataclass
class LocalRayCluster:
    """``start()`` a head, ``add_node()`` workers, ``stop()`` everything it started."""

    root: Path  # logs and Ray's temp dir live under it
    head_cpus: float = 2
    head_memory_bytes: int | None = None  # Ray's "memory" resource of the head (default: Ray's guess)
    ray: str = ""  # the `ray` script to start nodes with (default: the one beside this Python)
    dashboard_port: int = 0  # >0: the head serves Ray's dashboard (and Ray Jobs' API) there
    nodes: list[LocalNode] = field(default_factory=list)
    port: int = 0
    _tmp: str = ""

    head_address = "127.0.0.2"  # nodes get 127.0.0.2, .3, … in the order they start

    @property
    def dashboard_url(self) -> str:
        """Ray's dashboard (Ray Jobs' REST API), where ``dashboard_port`` is set."""
        return f"http://{self.head_address}:{self.dashboard_port}"

    @property
    def address(self) -> str:
        """The GCS address Atoll's ATOLL_RAY_ADDRESS names."""
        return f"{self.nodes[0].address}:{self.port}"

    def _start_node(self, args: list[str], timeout: float) -> LocalNode:
        address = f"127.0.0.{len(self.nodes) + 2}"
        self.root.mkdir(parents=True, exist_ok=True)
        log = self.root / f"node-{address}.log"
        cmd = [
            self.ray or ray_executable(),
            "start",
            "--block",
            "--disable-usage-stats",
            "--node-ip-address",
            address,
            "--node-manager-port",
            str(free_port()),
            "--object-manager-port",
            str(free_port()),
            "--dashboard-agent-listen-port",
            str(free_port()),
            "--dashboard-agent-grpc-port",
            str(free_port()),
            "--metrics-export-port",
            str(free_port()),
            "--runtime-env-agent-port",
            str(free_port()),
            "--object-store-memory",
            str(100 * 1024 * 1024),
            *args,
        ]
        env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1"}
        with log.open("ab") as out:
            proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        node = LocalNode(address, proc, log)
        self.nodes.append(node)
        self._wait_joined(node, timeout)
        return node

    def _wait_joined(self, node: LocalNode, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if node.process.poll() is not None:
                raise RuntimeError(f"ray node {node.address} exited: {node.log.read_text()[-2000:]}")
            if b"Ray runtime started" in node.log.read_bytes():
                return
            time.sleep(0.2)
        raise RuntimeError(f"ray node {node.address} did not start in {timeout:.0f} s: see {node.log}")

    def start(self, timeout: float = 60) -> LocalRayCluster:
        """Start the head (it takes no GPU and no custom resource)."""
        self.port = free_port()
        self._start_node(
            [
                "--head",
                "--port",
                str(self.port),
                *(
                    [
                        "--include-dashboard=true",
                        f"--dashboard-host={self.head_address}",
                        f"--dashboard-port={self.dashboard_port}",
                    ]
                    if self.dashboard_port
                    else ["--include-dashboard=false"]
                ),
                "--num-cpus",
                f"{self.head_cpus:g}",
                "--num-gpus",
                "0",
                "--temp-dir",
                self._temp_dir(),
                *(["--memory", str(self.head_memory_bytes)] if self.head_memory_bytes else []),
            ],
            timeout,
        )
        return self

    def add_node(
        self,
        cpus: float,
        gpus: int = 0,
        resources: dict[str, float] | None = None,
        memory_bytes: int | None = None,
        timeout: float = 60,
    ) -> LocalNode:
        """A worker node with these resources (GPUs may be declared on a machine that has none: Ray
        then hands out their ids without a device behind them, which is what tests of GPU placement
        need)."""
        args = ["--address", self.address, "--num-cpus", f"{cpus:g}", "--num-gpus", str(gpus)]
        if resources:
            args += ["--resources", json.dumps(resources)]
        if memory_bytes:
            args += ["--memory", str(memory_bytes)]
        return self._start_node(args, timeout)

    def stop_node(self, node: LocalNode, grace: float = 10) -> None:
        """Stop one node's process group: SIGTERM, then SIGKILL after ``grace``."""
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.process.wait(wait)
                break

    def _temp_dir(self) -> str:
        """Ray's session dir holds its unix sockets, whose paths must stay under 108 bytes: a short
        directory of its own under /tmp, removed by stop()."""
        self._tmp = tempfile.mkdtemp(prefix="atoll-ray-")
        return self._tmp

    def stop(self) -> None:
        """Stop the workers, then the head; remove Ray's temp dir."""
        for node in reversed(self.nodes):
            self.stop_node(node)
        self.nodes.clear()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)


def reap(node_dir: Path) -> None:
    """Kill what workloads a node dir's local runtime still runs (their supervisors live in sessions
    of their own, beyond the Ray processes a stop reaches), through the runtime that started them."""
    if not (node_dir / "runtime").is_dir():
        return
    rt = LocalRuntime(node_dir / "runtime", LogStore(node_dir / "logs"))
    for st in rt.adopt():
        rt.forget(st.id)


def release(address: str, namespace: str, node_ip: str) -> None:
    """Stop every workload a stopped Atoll server left in its Ray namespace and free the room they
    held: the ray runtime's own forget(), from a Ray driver in a subprocess of its own (the caller
    does not join the cluster)."""
    subprocess.run(
        [sys.executable, "-m", "atoll.runtime.ray.cluster", "release", address, namespace, node_ip],
        check=True,
        timeout=300,
    )


def _release_main(address: str, namespace: str, node_ip: str) -> None:
    from atoll.runtime.ray.runtime import RayRuntime

    with tempfile.TemporaryDirectory(prefix="atoll-ray-release-") as tmp:
        rt = RayRuntime(address, LogStore(Path(tmp) / "logs"), Path(tmp) / "state", tmp, namespace, node_ip)
        try:
            for st in rt.adopt():
                rt.forget(st.id)
        finally:
            rt.close()


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] != "release":
        sys.exit("usage: python -m atoll.runtime.ray.cluster release ADDRESS NAMESPACE NODE_IP")
    _release_main(*sys.argv[2:])
