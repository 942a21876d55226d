"""What this machine offers the compute pool: cores, memory, GPUs, and how limits can be enforced.

GPU detection asks NVML (through `nvidia-smi`, so no driver library is needed to import Atoll);
finding no GPU is a valid answer, and GPU configurations then show as unavailable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

from atoll.capacity import Gpu, Inventory


def _meminfo_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def detect_gpus(override: str | None = None) -> tuple[tuple[Gpu, ...], str, str]:
    """(gpus, source, error). `override` is a comma-separated list of GPU names, for tests."""
    if override is not None:
        names = [n.strip() for n in override.split(",") if n.strip()]
        return tuple(Gpu(i, n, 0) for i, n in enumerate(names)), "override", ""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return (), "none", "nvidia-smi not found: no NVIDIA driver on this machine"
    try:
        out = subprocess.run(
            [smi, "--query-gpu=index,name,memory.total,uuid", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return (), "none", f"nvidia-smi failed: {e}"
    if out.returncode != 0:
        return (), "none", f"nvidia-smi failed: {(out.stderr or out.stdout).strip()[:200]}"
    gpus = []
    for line in out.stdout.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3 and parts[0].isdigit():
            mem = int(float(parts[2])) if parts[2].replace(".", "", 1).isdigit() else 0
            gpus.append(Gpu(int(parts[0]), parts[1], mem, parts[3] if len(parts) > 3 else ""))
    return tuple(gpus), "nvidia-smi", ""


def detect(pool_cpus: float = 0, pool_memory_gb: float = 0, gpus_override: str | None = None) -> Inventory:
    cpus = pool_cpus or float(len(os.sched_getaffinity(0)))
    mem = pool_memory_gb or round(_meminfo_gb(), 1)
    gpus, source, err = detect_gpus(gpus_override)
    return Inventory(cpus=cpus, memory_gb=mem, gpus=gpus, gpu_source=source, gpu_error=err)


@lru_cache(maxsize=8)
def cached(pool_cpus: float = 0, pool_memory_gb: float = 0, gpus_override: str | None = None) -> Inventory:
    """Detection runs a subprocess: do it once per process and settings."""
    return detect(pool_cpus, pool_memory_gb, gpus_override)
