"""Hostile tenants on the Docker runtime: a container of project B reaches its own project's
containers and nothing of project A's, of a project namespace of the local runtime, or of the host.

Against a real private dockerd (tests/support/docker.py) and the real DockerRuntime with its
per-project networks. The host forwards packets while these run (`ip_forward` = 1, as the local
runtime's namespaces need anyway): that is the condition under which bridges route to each
other, so isolation here is the rules' doing, not the sysctl's. Skipped, with the reason, where
Docker or root is missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from atoll.runtime.base import Resources, Workload
from atoll.runtime.docker.networks import ProjectBridges
from atoll.runtime.docker.runtime import LABEL, DockerRuntime
from atoll.runtime.local.netns import IP_FORWARD, ProjectNetworks
from atoll.storage.logs import LogStore
from tests.runtime.conftest import wait_for
from tests.support.docker import Dockerd, dockerd_or_skip
from tests.support.postgres import free_port

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network isolation needs root")

SERVE = "python3 -m http.server {port} --bind 0.0.0.0"
# Tries each "address:port" given in argv; prints {target: "open" | error}.
PROBE = (
    "import json, socket, sys\n"
    "out = {}\n"
    "for t in sys.argv[1:]:\n"
    "    h, p = t.rsplit(':', 1)\n"
    "    try:\n"
    "        socket.create_connection((h, int(p)), timeout=3).close(); out[t] = 'open'\n"
    "    except OSError as e:\n"
    "        out[t] = type(e).__name__\n"
    "print(json.dumps(out))\n"
    "print(open('/proc/sys/net/ipv6/conf/all/disable_ipv6').read().strip())\n"
)


@pytest.fixture(scope="module")
def dockerd() -> Iterator[Dockerd]:
    with dockerd_or_skip() as d:
        yield d


@pytest.fixture
def forwarding() -> Iterator[None]:
    before = IP_FORWARD.read_text()
    IP_FORWARD.write_text("1\n")
    yield
    IP_FORWARD.write_text(before)


@pytest.fixture
def rt(dockerd: Dockerd, tmp_path: Path, forwarding: None) -> Iterator[DockerRuntime]:
    runtime = DockerRuntime(
        LogStore(tmp_path / "logs"), base_url=dockerd.url, network_tag=uuid.uuid4().hex[:6]
    )
    yield runtime
    for c in runtime.client.containers.list(all=True, filters={"label": LABEL}):
        runtime.forget(c.labels[LABEL])
    assert runtime.networks is not None
    runtime.networks.remove_all()
    runtime.close()


@pytest.fixture
def local_project(tmp_path: Path) -> Iterator[tuple[ProjectNetworks, str]]:
    """A project namespace of the local runtime, beside the containers."""
    nets = ProjectNetworks(tmp_path / "runtime")
    try:
        net = nets.ensure("prj-local")
    except Exception as e:
        pytest.skip(f"no network namespaces here: {e}")
    yield nets, net.name
    nets.remove_all()


def _workload(
    dockerd: Dockerd, tmp_path: Path, wid: str, project: str, argv: list[str], **kw: object
) -> Workload:
    return Workload(
        id=wid,
        command=argv,
        resources=Resources(cpus=0.5, memory_mb=256),
        workdir=tmp_path / "work" / wid,
        image=dockerd.image,
        labels={"project": project},
        **kw,  # type: ignore[arg-type]
    )


def _serve(rt: DockerRuntime, dockerd: Dockerd, tmp_path: Path, wid: str, project: str) -> tuple[str, int]:
    """A web server in a container of ``project``: (its address on its network, its host port)."""
    port = free_port()
    argv = ["sh", "-c", SERVE.format(port=port)]
    rt.start(_workload(dockerd, tmp_path, wid, project, argv, ports=(port,)))
    wait_for(lambda: _answers(f"http://127.0.0.1:{port}/"), 30, f"{wid} to serve")
    c = rt.client.containers.get(f"atoll-{wid}")
    nets = c.attrs["NetworkSettings"]["Networks"]
    assert rt.networks is not None and list(nets) == [rt.networks.name(project)]
    return next(iter(nets.values()))["IPAddress"], port


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _probe(
    rt: DockerRuntime, dockerd: Dockerd, tmp_path: Path, project: str, targets: list[str]
) -> dict[str, str]:
    wid = f"probe-{uuid.uuid4().hex[:8]}"
    rt.start(_workload(dockerd, tmp_path, wid, project, ["python3", "-c", PROBE, *targets]))
    wait_for(lambda: rt.status(wid).state.finished, 60, f"{wid} to finish")
    out = rt.logs(wid, "stdout", 0, 1 << 20).data.decode().splitlines()
    assert len(out) == 2, rt.logs(wid, "stderr", 0, 1 << 20).data
    assert out[1] == "1", "a container of a project network has IPv6 (a way around the v4 rules)"
    return json.loads(out[0])


@contextlib.contextmanager
def _listener(address: str) -> Iterator[int]:
    """A host service bound to ``address`` (one of the bridges' host addresses: ours to use)."""
    s = socket.socket()
    s.bind((address, 0))
    s.listen(8)
    stop = threading.Event()

    def accept() -> None:
        s.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                s.accept()[0].close()

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield s.getsockname()[1]
    finally:
        stop.set()
        t.join()
        s.close()


def _gateway(rt: DockerRuntime, project: str) -> str:
    assert rt.networks is not None
    net = rt.client.networks.get(rt.networks.name(project))
    return str(net.attrs["IPAM"]["Config"][0]["Gateway"])


def test_containers_reach_only_their_own_project(
    rt: DockerRuntime, dockerd: Dockerd, tmp_path: Path, local_project: tuple[ProjectNetworks, str]
) -> None:
    a_ip, a_port = _serve(rt, dockerd, tmp_path, "wl-a1", "prj-a")
    b_ip, b_port = _serve(rt, dockerd, tmp_path, "wl-b1", "prj-b")
    a_host = _gateway(rt, "prj-a")
    with _listener(a_host) as host_port:
        got = _probe(
            rt,
            dockerd,
            tmp_path,
            "prj-b",
            [
                f"{b_ip}:{b_port}",
                f"{a_ip}:{a_port}",
                f"{a_host}:{host_port}",
                f"{_gateway(rt, 'prj-b')}:{host_port}",
            ],
        )
    assert got[f"{b_ip}:{b_port}"] == "open", got  # its own project's container
    closed = {t: r for t, r in got.items() if t != f"{b_ip}:{b_port}" and r == "open"}
    assert not closed, f"a container of project B reached {closed}"
    # The published ports still answer on the host's loopback (docker-proxy: how the gateway gets in).
    assert _answers(f"http://127.0.0.1:{a_port}/") and _answers(f"http://127.0.0.1:{b_port}/")


def test_no_path_between_containers_and_project_namespaces(
    rt: DockerRuntime, dockerd: Dockerd, tmp_path: Path, local_project: tuple[ProjectNetworks, str]
) -> None:
    nets, ns = local_project
    found = nets.find(ns)
    assert found is not None
    a_ip, a_port = _serve(rt, dockerd, tmp_path, "wl-a2", "prj-a")
    # A local-runtime workload's server in its namespace, on its project address.
    port = free_port()
    server = subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-m", "http.server", str(port), "--bind", found.address],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        ready = [sys.executable, "-c", PROBE, f"{found.address}:{port}"]
        wait_for(
            lambda: (
                '"open"'
                in subprocess.run(["ip", "netns", "exec", ns, *ready], capture_output=True, text=True).stdout
            ),
            30,
            "the namespace's server",
        )
        # From the container into the namespace …
        got = _probe(rt, dockerd, tmp_path, "prj-a", [f"{found.address}:{port}"])
        assert got[f"{found.address}:{port}"] != "open", got
        # … and from the namespace into the container.
        probe = [sys.executable, "-c", PROBE, f"{a_ip}:{a_port}"]
        out = subprocess.run(["ip", "netns", "exec", ns, *probe], capture_output=True, text=True, timeout=30)
        assert json.loads(out.stdout.splitlines()[0])[f"{a_ip}:{a_port}"] != "open", out.stdout
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=10)


def test_networks_are_per_project_and_found_again(rt: DockerRuntime, dockerd: Dockerd) -> None:
    assert rt.networks is not None
    first = rt.networks.ensure("prj-x")
    # Another server over the same daemon and installation finds it (no duplicate, no error).
    again = ProjectBridges(rt.client, rt.networks.tag)
    assert again.ensure("prj-x") == first
    assert [n.name for n in rt.client.networks.list(names=[first])] == [first]
    assert rt.networks.ensure("prj-y") != first


@pytest.mark.parametrize("setting", ["auto", "off"])
def test_doctor_shows_the_containers_isolation(dockerd: Dockerd, tmp_path: Path, setting: str) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ATOLL_")},
        "ATOLL_DATA_DIR": str(tmp_path / "data"),
        "ATOLL_DOCKER_HOST": dockerd.url,
        "ATOLL_NETWORK_ISOLATION": setting,
        "ATOLL_URL": f"http://127.0.0.1:{free_port()}",  # no server: the report still comes
    }
    atoll = str(Path(sys.executable).with_name("atoll"))
    out = subprocess.run(
        [atoll, "doctor", "--format", "json"], env=env, capture_output=True, text=True, timeout=60
    )
    rows = {r["what"]: r for r in json.loads(out.stdout)["isolation"]}
    row = rows["containers (Docker)"]
    if setting == "auto":
        assert row["inForce"] and "a Docker network per project" in row["detail"], row
    else:
        assert not row["inForce"] and "ATOLL_NETWORK_ISOLATION is off" in row["detail"], row
