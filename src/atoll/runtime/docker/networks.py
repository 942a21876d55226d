"""One Docker network per project: a project's containers reach each other, and no container of
another project, no project namespace of the local runtime and no service of the host.

On the daemon's default bridge every container of every project shares one L2 segment, so a
node of project B could connect to project A's container at its bridge address, port and all,
around the gateway. Here each project gets a user-defined bridge network ``atoll-<tag>-<key>``
(labelled ``atoll.network=<tag>``; the tag keeps two installations on one daemon apart). Its
Linux bridge is named ``av<hash>d``: the ``av`` family of the local runtime's veths
(runtime/local/netns.py), whose rules already refuse to forward from a project into any ``av+``
interface, so each side's rules cover the other whatever their order in the chain.

The rules Atoll adds for each bridge (iptables, as root; idempotent, checked at every start):

* INPUT from the bridge: only replies to connections the host opened (docker-proxy's connections
  to published ports are the host's; a container reaches no host service on a wildcard address);
* FORWARD from the bridge into any ``av+`` interface: dropped (another project's bridge or
  namespace), except within the bridge itself (where br_netfilter shows bridged traffic here);
* FORWARD into the bridge: only replies (a project namespace or another bridge opens nothing).

They go into ``DOCKER-USER`` where the daemon manages iptables (it jumps there before its own
rules, and keeps that chain across restarts), else at the top of ``FORWARD``. The way out to the
outside network (NAT, ``ip_forward``) stays the daemon's business, as for any container. Ports
are published on ``127.0.0.1`` only; containers get no IPv6 (``disable_ipv6``), so no
link-local path goes around the v4 rules.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import threading
from typing import Any

from docker.errors import APIError, NotFound

log = logging.getLogger("atoll.runtime.docker.runtime")
LABEL = "atoll.network"
_REPLIES = ("-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED")
# Inside a container: the v4 rules are the whole story.
NO_IPV6 = {"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"}


class NetworkError(RuntimeError):
    pass


def _iptables(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["iptables", "-w", *args], capture_output=True, text=True, timeout=30, check=False)


def firewall_unavailable() -> str:
    """Why Atoll cannot add its rules for the bridges here ("" when it can)."""
    if os.geteuid() != 0:
        return "the server is not root"
    if shutil.which("iptables") is None:
        return "`iptables` is not installed (apt-get install iptables)"
    if _iptables("-S", "INPUT").returncode != 0:
        return "the kernel refused to list iptables rules"
    return ""


def _rules(br: str) -> list[tuple[str, ...]]:
    """(chain, match…), in insertion order: each goes to the top, so the last listed is first."""
    fwd = "DOCKER-USER" if _iptables("-S", "DOCKER-USER").returncode == 0 else "FORWARD"
    return [
        ("INPUT", "-i", br, "-j", "DROP"),
        ("INPUT", "-i", br, *_REPLIES, "-j", "ACCEPT"),
        (fwd, "-o", br, "-j", "DROP"),
        (fwd, "-o", br, *_REPLIES, "-j", "ACCEPT"),
        (fwd, "-i", br, "-o", "av+", "-j", "DROP"),
        (fwd, "-i", br, "-o", br, "-j", "ACCEPT"),
    ]  # fmt: skip


def add_rules(br: str) -> None:
    """Atoll's rules for the bridge ``br``, unless all are in place already."""
    rules = _rules(br)
    if all(_iptables("-C", chain, *match).returncode == 0 for chain, *match in rules):
        return
    delete_rules(br)  # a partial set (a crash, a flushed chain): lay it again in order
    for chain, *match in rules:
        r = _iptables("-I", chain, *match)
        if r.returncode != 0:
            raise NetworkError(f"iptables -I {chain} {' '.join(match)}: {r.stderr.strip()}")


def delete_rules(br: str) -> None:
    """Atoll's rules for the bridge ``br`` (also after the daemon that had it is gone)."""
    for chain, *match in _rules(br):
        while _iptables("-D", chain, *match).returncode == 0:
            pass


class ProjectBridges:
    """Makes and finds the projects' Docker networks of one installation, with their rules."""

    def __init__(self, client: Any, tag: str) -> None:
        self.client = client
        self.tag = tag
        self.firewall = firewall_unavailable()  # "" when Atoll's rules are added
        self._lock = threading.Lock()
        self._checked: set[str] = set()  # networks whose rules this server has put in place

    def name(self, key: str) -> str:
        return f"atoll-{self.tag}-{key}"

    @staticmethod
    def bridge(name: str) -> str:
        return f"av{hashlib.sha256(name.encode()).hexdigest()[:9]}d"  # 12 characters: under 15

    def _find(self, name: str) -> Any | None:
        for net in self.client.networks.list(names=[name]):
            if net.name == name and net.attrs.get("Labels", {}).get(LABEL) == self.tag:
                return net
        return None

    def ensure(self, key: str) -> str:
        """The network's name for ``key`` (a project), made with its rules if missing."""
        name = self.name(key)
        with self._lock:
            net = self._find(name)
            if net is None:
                try:
                    net = self.client.networks.create(
                        name,
                        driver="bridge",
                        check_duplicate=True,
                        labels={LABEL: self.tag, "atoll.project": key},
                        options={
                            "com.docker.network.bridge.name": self.bridge(name),
                            "com.docker.network.bridge.enable_icc": "true",
                            "com.docker.network.bridge.host_binding_ipv4": "127.0.0.1",
                        },
                    )
                except APIError as e:
                    if e.status_code != 409:  # 409: another server made it just now
                        raise NetworkError(f"cannot create Docker network {name}: {e.explanation}") from e
                    net = self._find(name)
                    if net is None:
                        raise NetworkError(f"Docker network {name} exists but is not Atoll's") from e
                log.info("Docker network %s for %s (bridge %s)", name, key, self.bridge(name))
            if not self.firewall and name not in self._checked:
                add_rules(self.bridge(name))
                self._checked.add(name)
        return name

    # --- removing -----------------------------------------------------------------------------

    def remove_all(self) -> None:
        """Every network of this installation, with its rules (tests, uninstall); containers
        still attached keep it (Docker refuses), and it is said."""
        with self._lock:
            for net in self.client.networks.list(filters={"label": f"{LABEL}={self.tag}"}):
                if not self.firewall:
                    delete_rules(self.bridge(net.name))
                try:
                    net.remove()
                except NotFound:
                    pass
                except APIError as e:
                    log.warning("cannot remove Docker network %s: %s", net.name, e.explanation)
                self._checked.discard(net.name)
