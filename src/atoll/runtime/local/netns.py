"""One network namespace per project on the local runtime: a project's workloads share a
loopback and an address of their own, and reach nothing of other projects' or Atoll's.

On a shared loopback, every port of every project's notebook servers and node instances, and
Atoll's own (Ray, the database, admin ports), was one ``connect()`` away from any job. Here each
project gets a namespace ``atoll-<tag>-<key>`` (``ip netns``) joined to the host by a veth pair
on a /30 of ``ATOLL_NETWORK_CIDR``: the host side holds ``.1``, the project ``.2``, which its
servers bind to ($HOST) and Atoll's gateway, notebook proxy and health checks connect to. The
kernel keeps the rest apart, with iptables rules of our own:

* INPUT from a project's veth: only replies to connections the host opened (no wildcard-bound
  host service is reachable through the veth's address);
* FORWARD between two projects' veths: dropped; to the outside: allowed and masqueraded
  (``net.ipv4.ip_forward`` is turned on), so ``pip install`` and downloads work;
* no IPv6 address on either end of the veth (no link-local path around the rules).

Atoll's public API and the gateway stay reachable as for any user: ``relay.py`` listens on
``127.0.0.1:<port>`` inside each namespace and relays to the host's loopback.

Namespaces, veths and rules outlive ``atoll up`` with the workloads in them (re-adoption); they
are found again by their names. The tag (a hash of the runtime's state dir) keeps two Atoll
installations, or test servers, on one machine apart.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from atoll.runtime.local.relay import LoopbackRelay

log = logging.getLogger("atoll.netns")
NETNS_DIR = Path("/run/netns")
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
LOCK = Path("/run/atoll-netns.lock")  # one allocator of /30s on the machine, whichever install


_REPLIES = ("-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED")


class NetworkError(RuntimeError):
    pass


@dataclass(frozen=True)
class ProjectNetwork:
    """A project's namespace: its name, the path a process joins it by, and its addresses."""

    name: str
    host_address: str  # the host's end of the veth
    address: str  # the project's end: where its servers listen

    @property
    def path(self) -> str:
        return str(NETNS_DIR / self.name)


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=30, check=False)
    if check and proc.returncode != 0:
        raise NetworkError(f"{' '.join(args)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def unavailable() -> str:
    """Why projects cannot get namespaces here ("" when they can)."""
    if os.geteuid() != 0:
        return "the server is not root"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (apt-get install iproute2 iptables)"
    probe = f"atoll-probe-{os.getpid()}"
    try:
        _run("ip", "netns", "add", probe)
        _run("iptables", "-w", "-S", "INPUT")
    except (NetworkError, OSError, subprocess.SubprocessError) as e:
        return f"the kernel refused a network namespace or its rules ({e})"
    finally:
        _run("ip", "netns", "delete", probe, check=False)
    return ""


def install_tag(state_dir: Path) -> str:
    """A short name for one installation (its runtime state dir) in names shared by the machine."""
    return hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:6]


class ProjectNetworks:
    """Makes, finds and removes the projects' namespaces of one Atoll installation."""

    def __init__(self, state_dir: Path, cidr: str = "10.231.0.0/16") -> None:
        self.tag = install_tag(state_dir)
        self.cidr = ipaddress.ip_network(cidr)
        if self.cidr.prefixlen > 28:
            raise ValueError(f"ATOLL_NETWORK_CIDR {cidr} is too small: give a /28 or larger")

    def name(self, key: str) -> str:
        return f"atoll-{self.tag}-{key}"

    def _veth(self, name: str) -> tuple[str, str]:
        h = hashlib.sha256(name.encode()).hexdigest()[:9]
        return f"av{h}h", f"av{h}n"  # 12 characters: under the kernel's 15

    # --- finding ------------------------------------------------------------------------------

    def names(self) -> list[str]:
        """This installation's namespaces."""
        if not NETNS_DIR.is_dir():
            return []
        return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(f"atoll-{self.tag}-"))

    def find(self, name: str) -> ProjectNetwork | None:
        if not (NETNS_DIR / name).exists():
            return None
        host_if, _ = self._veth(name)
        out = _run("ip", "-j", "-4", "addr", "show", "dev", host_if, check=False)
        if out.returncode != 0:
            return None
        for link in json.loads(out.stdout or "[]"):
            for a in link.get("addr_info", []):
                host = ipaddress.ip_address(a["local"])
                return ProjectNetwork(name, str(host), str(host + 1))
        return None

    # --- making -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        LOCK.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _free_subnet(self) -> ipaddress.IPv4Network:
        """A /30 of the range that no interface on the machine uses yet."""
        used = set()
        for link in json.loads(_run("ip", "-j", "-4", "addr").stdout or "[]"):
            for a in link.get("addr_info", []):
                used.add(ipaddress.ip_network(f"{a['local']}/30", strict=False))
        for subnet in self.cidr.subnets(new_prefix=30):
            if subnet not in used:
                return subnet  # type: ignore[return-value]
        raise NetworkError(f"no free /30 left in ATOLL_NETWORK_CIDR {self.cidr}")

    def ensure(self, key: str) -> ProjectNetwork:
        """The namespace for ``key`` (a project), made with its veth, addresses and rules if it is
        not there yet; idempotent and safe to race (a machine-wide lock)."""
        name = self.name(key)
        found = self.find(name)
        if found is not None:
            return found
        with self._locked():
            found = self.find(name)
            if found is not None:
                return found
            self._remove(name)  # whatever half of it a crash left
            subnet = self._free_subnet()
            host, ns = (str(subnet.network_address + 1), str(subnet.network_address + 2))
            host_if, ns_if = self._veth(name)
            try:
                self._make(name, host_if, ns_if, host, ns, str(subnet))
            except BaseException:
                self._remove(name)
                raise
            log.info("network namespace %s for %s: %s (host %s)", name, key, ns, host)
            return ProjectNetwork(name, host, ns)

    def _make(self, name: str, host_if: str, ns_if: str, host: str, ns: str, subnet: str) -> None:
        _run("ip", "netns", "add", name)
        _run("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        _run("ip", "link", "set", ns_if, "netns", name)
        # No IPv6 address on either end (not even link-local): nothing goes around the v4 rules.
        # Set after the move: a link entering a namespace takes that namespace's defaults.
        _run("ip", "link", "set", host_if, "addrgenmode", "none")
        _run("ip", "-n", name, "link", "set", ns_if, "addrgenmode", "none")
        _run("ip", "addr", "add", f"{host}/30", "dev", host_if)
        _run("ip", "link", "set", host_if, "up")
        _run("ip", "-n", name, "link", "set", "lo", "up")
        _run("ip", "-n", name, "addr", "add", f"{ns}/30", "dev", ns_if)
        _run("ip", "-n", name, "link", "set", ns_if, "up")
        _run("ip", "-n", name, "route", "add", "default", "via", host)
        for flag, table, chain, *match in self._rules(host_if, subnet):
            _run("iptables", "-w", flag, table, "-A" if chain == "POSTROUTING" else "-I", chain, *match)
        IP_FORWARD.write_text("1\n")  # the way out, NATed

    def _rules(self, host_if: str, subnet: str) -> list[tuple[str, ...]]:
        """(table, chain, match…) of the rules for one project's veth, in insertion order (each
        inserted at the top of its chain, so the last one listed ends up first)."""
        return [
            ("-t", "filter", "INPUT", "-i", host_if, "-j", "DROP"),
            ("-t", "filter", "INPUT", "-i", host_if, *_REPLIES, "-j", "ACCEPT"),
            ("-t", "filter", "FORWARD", "-o", host_if, "-j", "DROP"),
            ("-t", "filter", "FORWARD", "-o", host_if, *_REPLIES, "-j", "ACCEPT"),
            ("-t", "filter", "FORWARD", "-i", host_if, "-j", "ACCEPT"),
            ("-t", "filter", "FORWARD", "-i", host_if, "-o", "av+", "-j", "DROP"),
            ("-t", "nat", "POSTROUTING", "-s", subnet, "!", "-o", "av+", "-j", "MASQUERADE"),
        ]  # fmt: skip

    # --- removing -----------------------------------------------------------------------------

    def remove(self, key: str) -> None:
        with self._locked():
            self._remove(self.name(key))

    def remove_all(self) -> None:
        """Every namespace of this installation, with its veth and rules (tests, uninstall)."""
        with self._locked():
            for name in self.names():
                self._remove(name)

    def _remove(self, name: str) -> None:
        host_if, _ = self._veth(name)
        found = self.find(name)
        if found is not None:
            subnet = str(ipaddress.ip_network(f"{found.host_address}/30", strict=False))
            for flag, table, chain, *match in self._rules(host_if, subnet):
                while _run("iptables", "-w", flag, table, "-D", chain, *match, check=False).returncode == 0:
                    pass
        _run("ip", "link", "delete", host_if, check=False)  # takes its peer along
        _run("ip", "netns", "delete", name, check=False)


class NetworkIsolation:
    """What the workload controller uses: a project's network, made on first use, with Atoll's
    public ports relayed into it; those of an earlier run of the server are served again."""

    def __init__(self, networks: ProjectNetworks, relay: LoopbackRelay) -> None:
        self.networks = networks
        self.relay = relay
        for name in networks.names():  # namespaces outlive the server, with their workloads
            try:
                relay.serve(str(NETNS_DIR / name))
            except OSError as e:
                log.warning("cannot relay Atoll's ports into %s: %s", name, e)

    def for_project(self, project_id: str) -> ProjectNetwork:
        net = self.networks.ensure(project_id)
        self.relay.serve(net.path)
        return net

    def close(self) -> None:
        self.relay.close()
