"""What the compute pool holds: machines, their cores, memory and GPUs. Plain data: the runtimes
find it out (runtime/inventory.py, runtime/ray/runtime.py), the catalogue, the scheduler and the API read
it, and none of them imports the others for it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    memory_mb: int
    uuid: str = ""


@dataclass(frozen=True)
class Host:
    """One machine of a cluster (a Ray node): workloads are placed on one host each."""

    name: str  # the runtime's id of it (a Ray node id)
    address: str  # where workloads on it are reached
    cpus: float
    memory_gb: float
    gpus: tuple[Gpu, ...] = ()


@dataclass(frozen=True)
class Inventory:
    cpus: float
    memory_gb: float
    gpus: tuple[Gpu, ...] = field(default_factory=tuple)
    gpu_source: str = "none"  # "nvidia-smi", "override", "ray", "none"
    gpu_error: str = ""
    # The machines of a cluster; empty: this one machine, with the totals above.
    hosts: tuple[Host, ...] = ()
    # Machines may join (a Ray cluster, an autoscaler): work that fits no machine now waits for one
    # rather than failing.
    elastic: bool = False

    def machines(self) -> tuple[Host, ...]:
        """The hosts, or this machine as the only one."""
        return self.hosts or (Host("", "127.0.0.1", self.cpus, self.memory_gb, self.gpus),)

    def gpus_of_type(self, gpu_type: str) -> int:
        """How many detected GPUs match a catalogue type such as 'A100' (by name)."""
        t = gpu_type.lower()
        return sum(1 for g in self.gpus if t in g.name.lower())

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
