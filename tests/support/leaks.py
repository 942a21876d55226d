"""Processes the suite started and did not stop: the session-end check (tests/conftest.py).

Every fixture stops what it started, by pid or process group. What slips through (a workload a
server left when it stopped, a daemon whose stop failed) would outlive the run and skew the next
one, so the run fails and names it. A process counts as the suite's when it started after the
session did and either carries the session's mark in its environment (everything spawned from
the pytest process inherits it) or works in one of the session's trees (its temp dir, the data
dirs it made under /var/lib, this checkout): runtimes give workloads and their supervisors a clean
environment, so those are known by where they run. Another test session on the machine marks and
roots its own, so the two never count each other's.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

MARK = "ATOLL_TEST_SESSION"
# With parallel workers (pytest-xdist): where each worker writes the trees it registers, so that
# the controller, which checks at the very end, knows them all (workers inherit this variable).
ROOTS_FILE = "ATOLL_TEST_ROOTS_FILE"
_CLK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Leftover:
    pid: int
    cmdline: str

    def __str__(self) -> str:
        return f"pid {self.pid}: {self.cmdline[:200]}"


def mark_session() -> str:
    """Mark this process's environment so its descendants can be told apart; returns the mark."""
    value = os.environ.setdefault(MARK, uuid.uuid4().hex)
    return value


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0


def _started_at(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return _boot_time() + int(fields[19]) / _CLK  # field 22 of stat: start time in clock ticks


ROOTS: list[str] = []  # the session's trees, as registered by the fixtures that make them


def register_root(path: Path | str) -> None:
    """A tree this session made: a process working in it, or started from it, is the session's."""
    root = str(Path(path).resolve())
    ROOTS.append(root)
    shared = os.environ.get(ROOTS_FILE)
    if shared:
        with open(shared, "a") as f:  # one short line per append: whole lines, in any order
            f.write(root + "\n")


def load_shared_roots() -> None:
    """The trees the workers registered (the controller's check at the end)."""
    shared = os.environ.get(ROOTS_FILE)
    if shared and Path(shared).exists():
        ROOTS.extend(line for line in Path(shared).read_text().splitlines() if line)


def share_roots(directory: Path) -> None:
    """Make the roots file the workers will append to (once, in the controller)."""
    if ROOTS_FILE not in os.environ:
        path = directory / f"atoll-test-roots-{uuid.uuid4().hex[:12]}"
        path.touch()
        os.environ[ROOTS_FILE] = str(path)


def _ours(pid: int, mark: str) -> bool:
    env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    if f"{MARK}={mark}".encode() in env:
        return True
    places = [os.readlink(f"/proc/{pid}/cwd")]
    places += Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    return any(p == root or p.startswith(root + "/") for p in places for root in ROOTS)


def leftovers(mark: str, since: float, spare: set[int]) -> list[Leftover]:
    """The suite's processes still alive (zombies aside), but for ``spare`` (pytest and its parents)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in spare:
            continue
        pid = int(entry.name)
        with contextlib.suppress(OSError, IndexError, ValueError):
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if state == "Z" or _started_at(pid) < since - 1 or not _ours(pid, mark):
                continue
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            found.append(Leftover(pid, cmd))
    return found


def wait_for_none(mark: str, since: float, spare: set[int], grace: float = 15.0) -> list[Leftover]:
    """The leftovers once ``grace`` seconds have passed (stopping processes may still be exiting)."""
    deadline = time.monotonic() + grace
    while (found := leftovers(mark, since, spare)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return found


def ancestors() -> set[int]:
    """This process and its parents: never leftovers."""
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        with contextlib.suppress(OSError, IndexError, ValueError):
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            continue
        break
    return pids
