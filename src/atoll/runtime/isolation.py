"""Which isolation between projects is in force on this machine, and why not where it is not.

Atoll still runs where the machine cannot isolate (not root, no namespaces): what it cannot do
is said, never silently skipped. ``atoll up`` logs it and uses it; ``atoll doctor`` prints it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from atoll.runtime.docker import networks as docker_networks
from atoll.runtime.local import netns, sandbox


@dataclass(frozen=True)
class Isolation:
    """Each kind of isolation: "" when in force, else why not."""

    users: str  # each project's workloads as its own uid: files of Atoll and other projects unreadable
    processes: str  # a private /proc and /tmp per project (runtime/local/sandbox.py)
    network: str  # a network namespace per project (runtime/local/netns.py)
    containers: str | None = None  # a Docker network per project (docker_networks.py); None: no Docker

    def rows(self) -> list[tuple[str, bool, str]]:
        """(what, in force?, detail) for reports."""
        return [
            (
                "files and users",
                not self.users,
                "each project's workloads run as their own uid; tenant trees are touched only "
                "without following links"
                if not self.users
                else f"workloads run as the server's user: {self.users}",
            ),
            (
                "processes and /tmp",
                not self.processes,
                "a private /tmp per project; /proc shows a workload its own project's processes only"
                if not self.processes
                else f"shared /tmp and /proc: {self.processes}",
            ),
            (
                "network",
                not self.network,
                "a network namespace per project: no other project's ports, no Atoll internals; "
                "the API, the gateway and the outside are reachable"
                if not self.network
                else f"shared loopback (any workload can connect to any port on 127.0.0.1): {self.network}",
            ),
            *(
                []
                if self.containers is None
                else [
                    (
                        "containers (Docker)",
                        not self.containers,
                        "a Docker network per project, kept apart from other projects and the "
                        "host by Atoll's firewall rules"
                        if not self.containers
                        else f"containers of different projects may reach each other: {self.containers}",
                    )
                ]
            ),
        ]


def separation_unavailable(data: Path, uid_base: int) -> str:
    """Why workloads cannot run as per-project users here ("" when they can)."""
    import os

    if uid_base <= 0:
        return "ATOLL_WORKLOAD_UID_BASE is 0"
    if os.geteuid() != 0:
        return "the server is not root, so it cannot switch users (run one Atoll per trusted team)"
    for parent in data.resolve().parents:
        if not parent.stat().st_mode & 0o001:
            hint = "put ATOLL_DATA_DIR elsewhere (e.g. /var/lib/atoll)"
            return f"{parent} is not traversable by other users: {hint}"
    return ""


def in_force(
    data: Path, uid_base: int, runtime: str, network_setting: str, docker_host: str = ""
) -> Isolation:
    """What isolation this machine gives projects with these settings (probes the kernel once)."""
    users = separation_unavailable(data, uid_base)
    needs_users = "needs per-project users first" if users else ""
    processes = needs_users or sandbox.supported()
    if runtime != "local":
        network = f"the {runtime} runtime: see docs/security.md for what the cluster's admin adds"
    elif network_setting == "off":
        network = "ATOLL_NETWORK_ISOLATION is off"
    else:
        network = needs_users or processes or netns.unavailable()
    containers = None
    if docker_host:
        containers = (
            "ATOLL_NETWORK_ISOLATION is off"
            if network_setting == "off"
            else docker_networks.firewall_unavailable()
        )
    return Isolation(users=users, processes=processes, network=network, containers=containers)
