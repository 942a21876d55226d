"""What the local runtime's state dir says about one workload (or one parked warm process):
the files its supervisor writes, read in one go. Shared by the runtime and its warm pool."""

from __future__ import annotations

import time
from pathlib import Path

from atoll.runtime import cgroups
from atoll.runtime.proc_files import is_same_process, read_json


def recent(path: Path, seconds: float) -> bool:
    """Whether ``path`` exists and was modified less than ``seconds`` ago."""
    try:
        return time.time() - path.stat().st_mtime < seconds
    except OSError:
        return False


class Record:
    """Everything the state dir says about one workload, read in one go."""

    def __init__(self, d: Path) -> None:
        self.dir = d
        self.spec = read_json(d / "spec.json") or {}
        self.shim = read_json(d / "shim.json") or {}
        self.started = read_json(d / "started.json") or {}
        self.final = read_json(d / "status.json")
        g = self.spec.get("group")
        self.group = cgroups.Group.from_dict(g) if g else None

    @property
    def child_pid(self) -> int | None:
        pid = self.started.get("pid")
        return int(pid) if pid else None

    @property
    def shim_pid(self) -> int | None:
        pid = self.shim.get("pid")
        return int(pid) if pid else None

    def shim_alive(self) -> bool:
        return is_same_process(self.shim_pid, self.shim.get("start_time"))

    def child_alive(self) -> bool:
        return is_same_process(self.child_pid, self.started.get("start_time"))
