"""What the local runtime's state dir says about one workload (or one parked warm process):
the files its supervisor writes, read in one go. Shared by the runtime and its warm pool."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from atoll.runtime.local import cgroups
from atoll.runtime.local.proc_files import is_same_process, proc_stat, read_json

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


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


def session_members(session: int, pgid: int) -> list[int]:
    """Live processes in process group `pgid` of session `session`.

    Matching the session as well as the group keeps us from signalling a stranger that happened to
    reuse the group's number after our processes were gone.
    """
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = proc_stat(int(entry))
        if st is not None and st[0] not in ("Z", "X") and int(st[2]) == pgid and int(st[3]) == session:
            found.append(int(entry))
    return found


def tree_usage(rec: Record) -> tuple[float, int, int, int] | None:
    """CPU seconds, resident bytes, peak resident bytes and count of a live workload's processes,
    from /proc (where it has no cgroups to ask)."""
    child, session = rec.child_pid, rec.shim_pid
    if not (child and session):
        return None
    ticks = rss = 0
    peak = 0
    pids = session_members(session, child)
    for pid in pids:
        st = proc_stat(pid)
        if st is None:
            continue
        # utime + stime + cutime + cstime: the process and its reaped children.
        ticks += sum(int(x) for x in st[11:15])
        rss += int(st[21]) * _PAGE
    # Peak resident size is only known per process (VmHWM); the leader's is a lower bound.
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{child}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) * 1024
    return ticks / _CLK_TCK, rss, peak, len(pids)
