"""How the local runtime can limit workloads on this kernel: cgroup v2, cgroup v1 or rlimits."""

from __future__ import annotations

from dataclasses import dataclass, field

from atoll.runtime.base import Workload
from atoll.runtime.local import cgroups
from atoll.runtime.local.cgroups import Layout

_MIB = 1 << 20


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


def limits_for(
    layout: Layout | None, group_name: str, w: Workload
) -> tuple[cgroups.Group | None, dict[str, int], list[str]]:
    """The workload's cgroup (None where there is none to make), the rlimits that stand in for
    what the cgroup cannot enforce, and a line per limit enforced (for its system log)."""
    memory = w.resources.memory_mb * _MIB
    group = None
    enforced: list[str] = []
    if layout is not None:
        group = cgroups.create(layout, group_name, w.resources.cpus, memory, w.resources.max_pids)
        enforced = [f"cgroup-v{group.version} {v}" for v in group.enforced.values()]
        if not group.dirs:
            group = None
    rlimits: dict[str, int] = {}
    if group is None or "memory" not in group.enforced:
        # RLIMIT_AS counts address space, not memory: CUDA maps far more than it uses.
        if w.resources.gpus == 0 and not w.gpu_ids:
            rlimits["RLIMIT_AS"] = 2 * memory + 512 * _MIB
            enforced.append(f"rlimit RLIMIT_AS {rlimits['RLIMIT_AS']}")
    return group, rlimits, enforced
