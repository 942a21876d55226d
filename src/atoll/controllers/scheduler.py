"""Admission: which queued Workloads start now, on which configuration, and why others wait.

Pure functions over plain data, so the rules are easy to test and the loop that calls them
stays small. Rules (spec §3, §5.2, §7.2):
- `cloud-instance-types` is a fallback list: the first configuration that can run now wins;
- a configuration must be in the catalogue, enabled, allowed by the community, and fit the
  pool (vCPU, memory, GPUs of its type) — if it can never fit, it is skipped;
- the project's balance must be > 0, and the project's running hourly price plus this one
  must stay within `maxUnitsPerHour`;
- the queue is fair across communities: the community using the fewest vCPUs goes next;
- extended working storage (a job's `working-storage`) is reserved on the machine it runs on, out
  of the machine's storage for it (admin-set); a job waits while the reservations of running
  work leave too little;
- on a cluster, a Workload runs on one machine (a Ray node): it fits when some machine has room
  for all of it; machines without GPUs are filled first, so GPU machines stay free for GPU work;
  on an elastic cluster (machines may join) work that fits no machine waits instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class ConfigInfo:
    name: str
    vcpu: float
    ram_gb: float
    gpu_count: int = 0
    gpu_type: str = ""
    units_per_second: int = 1
    enabled: bool = True

    @property
    def units_per_hour(self) -> int:
        return self.units_per_second * 3600


@dataclass
class Pool:
    """One machine's share of the compute pool and what running Workloads hold of it."""

    cpus: float
    memory_gb: float
    gpus: dict[int, str] = field(default_factory=dict)  # index -> name
    used_cpus: float = 0.0
    used_memory_gb: float = 0.0
    used_gpus: set[int] = field(default_factory=set)
    host: str = ""  # the machine's name in its cluster ("" for the only one)
    address: str = "127.0.0.1"  # where workloads on it are reached
    storage_gb: float = 0.0  # what extended working storage may reserve here (GB)
    used_storage_gb: float = 0.0

    def _gpus_of(self, gpu_type: str, free_only: bool) -> list[int]:
        t = gpu_type.lower()
        return [
            i
            for i, n in sorted(self.gpus.items())
            if t in n.lower() and not (free_only and i in self.used_gpus)
        ]

    def ever_fits(self, c: ConfigInfo, storage_gb: float = 0.0) -> bool:
        if c.gpu_count and len(self._gpus_of(c.gpu_type, False)) < c.gpu_count:
            return False
        if storage_gb > self.storage_gb + 1e-9:
            return False
        return c.vcpu <= self.cpus + 1e-9 and c.ram_gb <= self.memory_gb + 1e-9

    def fits_now(self, c: ConfigInfo, storage_gb: float = 0.0) -> bool:
        if c.gpu_count and len(self._gpus_of(c.gpu_type, True)) < c.gpu_count:
            return False
        if storage_gb and self.used_storage_gb + storage_gb > self.storage_gb + 1e-9:
            return False
        return (
            self.used_cpus + c.vcpu <= self.cpus + 1e-9
            and self.used_memory_gb + c.ram_gb <= self.memory_gb + 1e-9
        )

    def take(self, c: ConfigInfo, storage_gb: float = 0.0) -> list[int]:
        gpu_ids = self._gpus_of(c.gpu_type, True)[: c.gpu_count] if c.gpu_count else []
        self.hold(c, gpu_ids, storage_gb)
        return gpu_ids

    def hold(self, c: ConfigInfo, gpu_ids: list[int], storage_gb: float = 0.0) -> None:
        """Account for a Workload that is already running."""
        self.used_cpus += c.vcpu
        self.used_memory_gb += c.ram_gb
        self.used_gpus.update(gpu_ids)
        self.used_storage_gb += storage_gb


@dataclass
class Cluster:
    """Several machines (Pools); a Workload is placed on one of them."""

    machines: list[Pool]
    elastic: bool = False  # machines may join: what fits none now waits

    @property
    def cpus(self) -> float:
        return sum(m.cpus for m in self.machines)

    @property
    def used_cpus(self) -> float:
        return sum(m.used_cpus for m in self.machines)

    def ever_fits(self, c: ConfigInfo, storage_gb: float = 0.0) -> bool:
        return any(m.ever_fits(c, storage_gb) for m in self.machines)

    def fits_now(self, c: ConfigInfo, storage_gb: float = 0.0) -> bool:
        return any(m.fits_now(c, storage_gb) for m in self.machines)

    def place(self, c: ConfigInfo, storage_gb: float = 0.0) -> tuple[Pool, list[int]]:
        """Take room for ``c`` on the first machine it fits, those without GPUs first for work that
        needs none; returns (the machine, gpu ids)."""
        order = sorted(self.machines, key=lambda m: bool(m.gpus) != bool(c.gpu_count))
        m = next(m for m in order if m.fits_now(c, storage_gb))
        return m, m.take(c, storage_gb)

    def hold(self, c: ConfigInfo, gpu_ids: list[int], host: str = "", storage_gb: float = 0.0) -> None:
        """Account for a Workload running on ``host`` (an unknown host: a machine that left)."""
        for m in self.machines:
            if m.host == host:
                m.hold(c, gpu_ids, storage_gb)
                return


@dataclass
class ProjectState:
    balance: int | None = None
    max_units_per_hour: int | None = None
    running_units_per_hour: int = 0  # hourly price of the project's running Workloads
    allowed: set[str] | None = None  # community allow-list; None allows all


@dataclass(frozen=True)
class Request:
    workload_id: str
    project_id: str
    community_id: str
    configurations: tuple[str, ...]
    created_at: datetime
    storage_gb: float = 0.0  # extended working storage to reserve on the machine


@dataclass(frozen=True)
class Decision:
    workload_id: str
    action: str  # "start" | "wait" | "fail"
    configuration: str | None = None
    gpu_ids: tuple[int, ...] = ()
    reason: str = ""
    host: str = ""  # the machine it is placed on (see Cluster)
    address: str = "127.0.0.1"  # ... and where workloads there are reached


def _decide(req: Request, pool: Cluster, catalog: dict[str, ConfigInfo], proj: ProjectState) -> Decision:
    if proj.balance is not None and proj.balance <= 0:
        return Decision(req.workload_id, "fail", reason="project balance is insufficient")
    unusable: list[str] = []
    waiting: list[str] = []
    for name in req.configurations:
        c = catalog.get(name)
        if c is None:
            unusable.append(f"{name}: not in the catalogue")
            continue
        if not c.enabled:
            unusable.append(f"{name}: disabled by the administrator")
            continue
        if proj.allowed is not None and name not in proj.allowed:
            unusable.append(f"{name}: not allowed in this community")
            continue
        limit = proj.max_units_per_hour
        if limit is not None and c.units_per_hour > limit:
            unusable.append(
                f"{name}: costs {c.units_per_hour} units/hour, over the project's maxUnitsPerHour {limit}"
            )
            continue
        storage = req.storage_gb
        if not pool.ever_fits(c, storage):
            gpus = f", {c.gpu_count}× {c.gpu_type}" if c.gpu_count else ""
            disk = f" and {storage:g} GB of working storage" if storage else ""
            need = f"{name}: needs {c.vcpu:g} vCPU, {c.ram_gb:g} GB{gpus}{disk}"
            if pool.elastic:
                waiting.append(f"{need} on one machine, and no node of the cluster has that: waiting for one")
            elif len(pool.machines) > 1:
                unusable.append(f"{need} on one machine, more than any machine of this installation has")
            else:
                unusable.append(f"{need}, more than this installation has")
            continue
        if limit is not None and proj.running_units_per_hour + c.units_per_hour > limit:
            waiting.append(
                f"{name}: the project's running work already uses {proj.running_units_per_hour} of "
                f"maxUnitsPerHour {limit}"
            )
            continue
        if not pool.fits_now(c, storage):
            if pool.fits_now(c):
                waiting.append(
                    f"{name}: waiting for working storage ({storage:g} GB; running jobs hold the rest)"
                )
            else:
                free = max(pool.cpus - pool.used_cpus, 0.0)
                waiting.append(f"{name}: waiting for capacity ({free:g} of {pool.cpus:g} vCPU free)")
            continue
        machine, gpu_ids = pool.place(c, storage)
        proj.running_units_per_hour += c.units_per_hour
        return Decision(
            req.workload_id, "start", name, tuple(gpu_ids), host=machine.host, address=machine.address
        )
    if waiting:
        return Decision(req.workload_id, "wait", reason="; ".join(waiting + unusable))
    hint = " (choose one that is available here: `atoll config list`)"
    reason = "no configuration can run it: " + "; ".join(unusable) + hint
    return Decision(req.workload_id, "fail", reason=reason)


def schedule(
    queue: list[Request],
    pool: Pool | Cluster,
    catalog: dict[str, ConfigInfo],
    projects: dict[str, ProjectState],
    community_cpus: dict[str, float],
) -> list[Decision]:
    """Decide for every queued request, fairly across communities (least vCPUs in use first)."""
    if isinstance(pool, Pool):
        pool = Cluster([pool])
    by_community: dict[str, list[Request]] = {}
    for req in sorted(queue, key=lambda r: (r.created_at, r.workload_id)):
        by_community.setdefault(req.community_id, []).append(req)
    usage = {c: community_cpus.get(c, 0.0) for c in by_community}
    decisions: list[Decision] = []
    while by_community:
        community = min(by_community, key=lambda c: (usage[c], c))
        req = by_community[community].pop(0)
        if not by_community[community]:
            del by_community[community]
        d = _decide(req, pool, catalog, projects.setdefault(req.project_id, ProjectState()))
        if d.action == "start" and d.configuration:
            usage[community] = usage.get(community, 0.0) + catalog[d.configuration].vcpu
        decisions.append(d)
    return decisions
