"""A private Docker daemon for the tests, and a small test image built without any registry.

`running_dockerd()` starts `dockerd` on its own socket, data root and exec root under /tmp, imports
the test image (Debian bookworm minbase + python3 and pip, made by debootstrap from the Debian mirror and
cached as a tarball in ~/.cache/atoll-tests/docker, so only the first run pays for it), and at the
end stops the daemon by its process group and puts the host's network back as it found it.

Networking (measured here): dockerd's defaults set the iptables FORWARD policy to DROP, switch on
net.ipv4.ip_forward and add docker0, all host-wide. The tests need none of it: a port published on
127.0.0.1 is served by docker-proxy (the userland proxy) on the host's loopback, which connects to
the container over the bridge — host-local traffic that neither forwarding nor NAT touches. So the
daemon runs with `--iptables=false --ip-forward=false` (the firewall and the sysctl are left alone)
on a bridge of its own (`--bridge=atollNNNNNmm`, created and deleted here, on a free 10.213.x.0/24),
not docker0, so two test sessions' daemons never share one. `--bridge=none` was measured too: a
container then has only loopback and its published ports answer nothing, so it is no option.
Containers get no outbound network this way; none of the tests wants any. Belt and braces, the
FORWARD policy, ip_forward and docker0 are recorded before and restored after anyway.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from atoll.runtime.docker import networks as docker_networks
from tests.support.leaks import register_root

IMAGE = "atoll-test:bookworm"
CACHE = Path.home() / ".cache" / "atoll-tests" / "docker"
# pip too: a project image must have it (spec §4.3), and the images' tests build FROM this one.
ROOTFS_TAR = CACHE / "bookworm-minbase-python3-pip.tar"
MIRROR = "http://deb.debian.org/debian"
_TRIM = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale")


class DockerUnavailable(Exception):
    """Docker cannot run here; the message says why (tests skip with it)."""


@dataclass
class Dockerd:
    url: str  # the daemon's API address, for DockerRuntime(base_url=...)
    image: str  # the test image, present on the daemon
    base: Path  # its data/exec roots and log
    pid: int
    bridge_address: str = ""  # the host's address on the daemon's own bridge (10.213.x.1)

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.url)

    def log(self) -> str:
        return (self.base / "dockerd.log").read_text(errors="replace")


def _run(cmd: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def ensure_rootfs() -> Path:
    """The cached rootfs tarball of the test image, built by debootstrap when missing (≈ 40-60 s)."""
    if ROOTFS_TAR.exists():
        return ROOTFS_TAR
    if shutil.which("debootstrap") is None:
        raise DockerUnavailable("debootstrap is not installed (apt-get install debootstrap; ./dev test does)")
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session may be building it right now
        if ROOTFS_TAR.exists():
            return ROOTFS_TAR
        work = Path(tempfile.mkdtemp(prefix="build-", dir=CACHE))
        try:
            rootfs = work / "rootfs"
            packages = "--include=python3,python3-pip"
            cmd = ["debootstrap", "--variant=minbase", packages, "bookworm", str(rootfs), MIRROR]
            r = _run(cmd, timeout=900)
            if r.returncode != 0:
                tail = (r.stdout + r.stderr).strip().splitlines()[-3:]
                raise DockerUnavailable(f"debootstrap of the test image failed: {' | '.join(tail)}")
            for rel in _TRIM:  # downloaded .debs, package lists, docs: a third of the size
                shutil.rmtree(rootfs / rel, ignore_errors=True)
            tmp = work / "rootfs.tar"
            r = _run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(tmp), "."], timeout=300)
            if r.returncode != 0:
                raise DockerUnavailable(f"tar of the test rootfs failed: {r.stderr.strip()}")
            os.replace(tmp, ROOTFS_TAR)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return ROOTFS_TAR


def _link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def _forward_policy() -> str | None:
    if shutil.which("iptables") is None:
        return None
    r = _run(["iptables", "-S", "FORWARD"])
    first = r.stdout.splitlines()[:1]
    return first[0].split()[-1] if r.returncode == 0 and first and first[0].startswith("-P") else None


def _ip_forward() -> str:
    return Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()


_BRIDGES = itertools.count()


def _make_bridge() -> tuple[str, str]:
    """A bridge of our own with a /24 on 10.213.x.0 that no interface or route uses yet."""
    # Per daemon, not per process: one test session may run two daemons at once (a session-scoped
    # one and a module's).
    name = f"atoll{os.getpid() % 100000:05d}{next(_BRIDGES) % 100:02d}"
    used = _run(["ip", "-4", "-o", "addr"]).stdout + _run(["ip", "-4", "route"]).stdout
    for i in range(250):
        x = (os.getpid() + i) % 250 + 1
        if f"10.213.{x}." not in used:
            break
    else:
        raise DockerUnavailable("no free 10.213.x.0/24 subnet for the test bridge")
    for cmd in (
        ["ip", "link", "add", "name", name, "type", "bridge"],
        ["ip", "addr", "add", f"10.213.{x}.1/24", "dev", name],
        ["ip", "link", "set", name, "up"],
    ):
        r = _run(cmd)
        if r.returncode != 0:
            _run(["ip", "link", "del", name])
            raise DockerUnavailable(f"cannot create the test bridge ({' '.join(cmd)}): {r.stderr.strip()}")
    return name, f"10.213.{x}.1"


def _answers(url: str) -> bool:
    try:
        c = docker.DockerClient(base_url=url, timeout=5)
    except Exception:  # not listening yet: the client asks for the API version at once
        return False
    try:
        return bool(c.ping())
    except Exception:
        return False
    finally:
        c.close()


def _unmount_under(root: Path) -> None:
    # After a dockerd that had to be killed: overlay and shm mounts left under its roots.
    with contextlib.suppress(OSError):
        points = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for p in sorted((p for p in points if p.startswith(str(root) + "/")), reverse=True):
            _run(["umount", "-l", p])


def _stop(proc: subprocess.Popen[bytes], base: Path) -> None:
    """SIGTERM the daemon's process group (it stops its containers and containerd), SIGKILL after 30 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    # Its containerd, should it have outlived the daemon (it is started in a group of its own).
    with contextlib.suppress(OSError, ValueError):
        pid = int((base / "exec" / "containerd" / "containerd.pid").read_text().strip())
        if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].endswith(b"containerd"):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def running_dockerd() -> Iterator[Dockerd]:
    """Start a private dockerd with the test image imported; stop it and restore the host after.

    Raises DockerUnavailable (with the reason) when Docker cannot run here."""
    if shutil.which("dockerd") is None:
        raise DockerUnavailable("dockerd is not installed (apt-get install docker.io; ./dev test does)")
    if os.geteuid() != 0:
        raise DockerUnavailable(f"dockerd needs root; the tests run as uid {os.geteuid()}")
    if shutil.which("ip") is None:
        raise DockerUnavailable("the `ip` command (iproute2) is missing")
    rootfs = ensure_rootfs()
    had_docker0, policy, forward = _link_exists("docker0"), _forward_policy(), _ip_forward()
    base = Path(tempfile.mkdtemp(prefix="atoll-dockerd-", dir="/tmp"))  # short: a socket path
    register_root(base)
    (base / "daemon.json").write_text(json.dumps({}))  # not /etc/docker/daemon.json
    bridge, bridge_address = _make_bridge()
    proc: subprocess.Popen[bytes] | None = None
    try:
        sock = base / "docker.sock"
        args = [
            "dockerd",
            f"--host=unix://{sock}",
            f"--data-root={base / 'data'}",
            f"--exec-root={base / 'exec'}",
            f"--pidfile={base / 'dockerd.pid'}",
            f"--config-file={base / 'daemon.json'}",
            f"--bridge={bridge}",
            "--iptables=false",
            # Plain HTTP to a registry a test starts on its bridge address (as on loopback).
            "--insecure-registry=10.213.0.0/16",
            "--ip-forward=false",
            "--shutdown-timeout=5",
            "--log-level=warn",
        ]
        with (base / "dockerd.log").open("wb") as out:
            proc = subprocess.Popen(
                args, stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True
            )
        d = Dockerd(f"unix://{sock}", IMAGE, base, proc.pid, bridge_address)
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                tail = " | ".join(d.log().strip().splitlines()[-3:])
                raise DockerUnavailable(f"dockerd exited with code {proc.returncode}: {tail}")
            if sock.exists() and _answers(d.url):
                break
            if time.monotonic() > deadline:
                raise DockerUnavailable(f"dockerd did not answer within 60 s: {d.log()[-500:]}")
            time.sleep(0.1)
        c = d.client()
        try:
            repo, tag = IMAGE.split(":")
            c.api.import_image_from_file(str(rootfs), repository=repo, tag=tag)
            c.images.get(IMAGE)
        finally:
            c.close()
        yield d
    finally:
        bridges = []  # the project networks an Atoll server made on this daemon: their rules go too
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(Exception):
                c = docker.DockerClient(base_url=f"unix://{base / 'docker.sock'}", timeout=10)
                labelled = c.networks.list(filters={"label": docker_networks.LABEL})
                bridges = [docker_networks.ProjectBridges.bridge(str(n.name)) for n in labelled]
                c.close()
        if proc is not None:
            _stop(proc, base)
        for br in bridges:  # a stopped daemon leaves its networks' bridges behind
            docker_networks.delete_rules(br)
            _run(["ip", "link", "del", br])
        _unmount_under(base)
        shutil.rmtree(base, ignore_errors=True)
        _run(["ip", "link", "del", bridge])
        if not had_docker0 and _link_exists("docker0"):
            _run(["ip", "link", "del", "docker0"])
        if policy is not None and _forward_policy() != policy:
            _run(["iptables", "-P", "FORWARD", policy])
        if _ip_forward() != forward:
            Path("/proc/sys/net/ipv4/ip_forward").write_text(forward)


@contextlib.contextmanager
def dockerd_or_skip() -> Iterator[Dockerd]:
    """``running_dockerd()``, or the calling test skipped with the reason Docker cannot run here."""
    with contextlib.ExitStack() as stack:
        try:
            d = stack.enter_context(running_dockerd())
        except DockerUnavailable as e:
            pytest.skip(f"Docker is not available here: {e}")
        yield d
