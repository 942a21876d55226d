"""How the local runtime can limit workloads on this kernel: cgroup v2, cgroup v1 or rlimits."""

from __future__ import annotations

from dataclasses import dataclass, field

from atoll.runtime.local import cgroups
from atoll.runtime.local.cgroups import Layout


@dataclass(frozen=True)
class LimitSupport:
    mechanism: str  # "cgroup-v2", "cgroup-v1", "rlimit"
    detail: str
    cpu: bool
    memory: bool
    pids: bool
    # Where the local runtime creates workload groups (None with rlimits); not part of equality.
    layout: Layout | None = field(default=None, compare=False, repr=False)


def detect_limits() -> LimitSupport:
    """How the local runtime can limit workloads here: cgroup v2 where the kernel gives us the cpu
    and memory controllers, cgroup v1 where our own groups are writable, else rlimits.

    With rlimits only memory is bounded (RLIMIT_AS, the address space, with headroom); CPU rate and
    process count are not (RLIMIT_CPU caps total CPU time, which would kill long jobs, and
    RLIMIT_NPROC counts every process of the user, not of the workload).
    """
    layout = cgroups.discover()
    if layout is None:
        return LimitSupport(
            "rlimit",
            "no writable cgroup: memory bounded by RLIMIT_AS only; CPU and process count not limited",
            cpu=False,
            memory=True,
            pids=False,
        )
    p = layout.parents
    return LimitSupport(
        f"cgroup-v{layout.version}", layout.describe(), "cpu" in p, "memory" in p, "pids" in p, layout
    )
