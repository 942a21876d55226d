"""Per-workload control groups: find where we may create them, set limits, read usage, clean up.

cgroup v2 (one unified tree: cpu.max, memory.max, pids.max) is used where the kernel offers its
cpu and memory controllers to us; otherwise cgroup v1 (one tree per controller:
cpu.cfs_quota_us, memory.limit_in_bytes, pids.max, and cpuacct for CPU time). Workload groups are
created under the server's *own* group of each hierarchy (from /proc/self/cgroup), never at the
root of someone else's tree, so Atoll nests inside whatever contains it (a container, a CI job).

Everything here is plain file I/O on cgroupfs, so the supervisor (`shim`) can use it without
importing anything heavy. Paths of a created group are recorded in the workload's state dir, so
a restarted server (which may itself sit in another group) finds and removes the same groups.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

V1_CONTROLLERS = ("cpu", "cpuacct", "memory", "pids")
CPU_PERIOD_US = 100_000


def _unescape(s: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 4 <= len(s) and s[i + 1 : i + 4].isdigit():
            out.append(chr(int(s[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def _mounts() -> list[tuple[str, Path, str, set[str]]]:
    """(fstype, mount point, root inside the hierarchy, super options) of every cgroup mount."""
    found = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        pre, sep, post = line.partition(" - ")
        if not sep:
            continue
        a, b = pre.split(), post.split()
        if len(a) < 5 or len(b) < 3 or b[0] not in ("cgroup", "cgroup2"):
            continue
        found.append((b[0], Path(_unescape(a[4])), _unescape(a[3]), set(b[2].split(","))))
    return found


def _own_paths() -> tuple[dict[str, str], str | None]:
    """This process's group per v1 controller, and its v2 group (None when not in a v2 tree)."""
    v1: dict[str, str] = {}
    v2: str | None = None
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return v1, v2
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, ctrls, path = parts
        if ctrls == "":
            v2 = path
        for c in ctrls.split(","):
            if c:
                v1[c] = path
    return v1, v2


def _inside(mount: Path, root: str, path: str) -> Path | None:
    # /proc/self/cgroup shows paths from the hierarchy's root; a mount may expose only a subtree.
    if root != "/" and not (path == root or path.startswith(root.rstrip("/") + "/")):
        return None
    rel = path[len(root) :] if root != "/" else path
    return mount / rel.lstrip("/")


def _writable_dir(p: Path | None) -> bool:
    return bool(p and p.is_dir() and os.access(p, os.W_OK | os.X_OK))


def _read(p: Path) -> str:
    return p.read_text().strip()


@dataclass(frozen=True)
class Layout:
    """Where workload groups are created: version 1 or 2, and a parent directory per controller."""

    version: int
    parents: dict[str, Path]
    note: str = ""

    def describe(self) -> str:
        """One line naming the parent group of each controller."""
        where = ", ".join(f"{c}={p}" for c, p in sorted(self.parents.items()))
        return f"cgroup v{self.version}: {where}" + (f" ({self.note})" if self.note else "")


def _v2_layout(mount: Path, root: str, own: str) -> Layout | None:
    mine = _inside(mount, root, own)
    if mine is None or not mine.is_dir():
        return None
    wanted = {"cpu", "memory", "pids"}

    def enabled(d: Path) -> set[str]:
        try:
            return set(_read(d / "cgroup.subtree_control").split())
        except OSError:
            return set()

    # v2 forbids processes in a group whose subtree_control enables controllers (except at the
    # root), and the server itself lives in its own group. So: use our group if its children
    # already get cpu+memory, else try to enable them (works when we are alone at a root), else
    # create workload groups beside ours, under our parent.
    candidates = [mine]
    if mine != mount:
        candidates.append(mine.parent)
    for d in candidates:
        if not _writable_dir(d):
            continue
        have = enabled(d)
        if not {"cpu", "memory"} <= have:
            try:
                offered = set(_read(d / "cgroup.controllers").split())
                (d / "cgroup.subtree_control").write_text(
                    " ".join(f"+{c}" for c in sorted(wanted & offered - have))
                )
            except OSError:
                continue
            have = enabled(d)
        if {"cpu", "memory"} <= have:
            note = "" if d == mine else "beside the server's own group"
            return Layout(2, {c: d for c in wanted & have}, note)
    return None


def discover() -> Layout | None:
    """The cgroup layout the local runtime can use here, or None when no group is writable.

    On cgroup v2 this may enable the cpu/memory/pids controllers in a parent's
    cgroup.subtree_control (that is what makes them usable by child groups).
    """
    own_v1, own_v2 = _own_paths()
    mounts = _mounts()
    if own_v2 is not None:
        for fstype, mount, root, _ in mounts:
            if fstype != "cgroup2":
                continue
            try:
                offered = set(_read(mount / "cgroup.controllers").split())
            except OSError:
                continue
            # A hybrid system mounts an empty v2 tree too (e.g. /sys/fs/cgroup/unified): skip it.
            if {"cpu", "memory"} <= offered:
                layout = _v2_layout(mount, root, own_v2)
                if layout:
                    return layout
    parents: dict[str, Path] = {}
    for fstype, mount, root, opts in mounts:
        if fstype != "cgroup":
            continue
        for c in V1_CONTROLLERS:
            if c in opts and c in own_v1 and c not in parents:
                d = _inside(mount, root, own_v1[c])
                if _writable_dir(d):
                    assert d is not None
                    parents[c] = d
    if "cpu" in parents or "memory" in parents:
        return Layout(1, parents)
    return None


@dataclass
class Group:
    """The groups of one workload: a directory per controller (several may be the same directory)."""

    version: int
    dirs: dict[str, str] = field(default_factory=dict)
    enforced: dict[str, str] = field(default_factory=dict)  # controller -> what was set, for humans

    def to_dict(self) -> dict[str, object]:
        """JSON-able form, stored in the workload's state dir."""
        return {"version": self.version, "dirs": self.dirs, "enforced": self.enforced}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Group:
        """Inverse of to_dict()."""
        dirs, enforced, version = d.get("dirs"), d.get("enforced"), d.get("version")
        return cls(
            version if isinstance(version, int) else 1,
            {str(k): str(v) for k, v in dirs.items()} if isinstance(dirs, dict) else {},
            {str(k): str(v) for k, v in enforced.items()} if isinstance(enforced, dict) else {},
        )

    def _unique_dirs(self) -> list[Path]:
        seen: list[Path] = []
        for d in self.dirs.values():
            if Path(d) not in seen:
                seen.append(Path(d))
        return seen

    def _file(self, controller: str, name: str) -> Path | None:
        d = self.dirs.get(controller)
        return Path(d) / name if d else None

    def _read_int(self, controller: str, name: str) -> int | None:
        p = self._file(controller, name)
        if p is None:
            return None
        try:
            raw = _read(p)
        except OSError:
            return None
        return int(raw) if raw.isdigit() else None

    def join(self, pid: int = 0) -> None:
        """Move a process (default: the calling one) into every group of this workload."""
        data = str(pid or os.getpid()).encode()
        for d in self._unique_dirs():
            fd = os.open(d / "cgroup.procs", os.O_WRONLY)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)

    def pids(self) -> set[int]:
        """Processes in any of the workload's groups."""
        found: set[int] = set()
        for d in self._unique_dirs():
            with contextlib.suppress(OSError):
                found.update(int(x) for x in (d / "cgroup.procs").read_text().split())
        return found

    def kill_all(self, attempts: int = 20) -> None:
        """SIGKILL every process in the groups, repeating while forks race with us."""
        for d in self._unique_dirs():
            kill = d / "cgroup.kill"  # v2 (Linux 5.14+): the kernel kills the whole group atomically
            if kill.exists():
                with contextlib.suppress(OSError):
                    kill.write_text("1")
        for _ in range(attempts):
            left = self.pids()
            if not left:
                return
            for pid in left:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)

    def remove(self, timeout: float = 5.0) -> bool:
        """Kill what is left inside and delete the directories; True when all are gone."""
        deadline = time.monotonic() + timeout
        pending = [d for d in self._unique_dirs() if d.exists()]
        while pending:
            self.kill_all()
            still = []
            for d in pending:
                try:
                    d.rmdir()
                except FileNotFoundError:
                    pass
                except OSError as e:
                    if e.errno != errno.EBUSY:
                        return False  # not a cgroup we can remove (not cgroupfs, no permission)
                    still.append(d)  # processes still leaving: retry
            pending = still
            if pending:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.05)
        return True

    def exists(self) -> bool:
        """Whether any of the directories still exists."""
        return any(d.exists() for d in self._unique_dirs())

    def cpu_seconds(self) -> float | None:
        """CPU time used by every process that ever ran in the group."""
        if self.version == 2:
            p = self._file("cpu", "cpu.stat")
            if p is None:
                return None
            try:
                for line in p.read_text().splitlines():
                    k, _, v = line.partition(" ")
                    if k == "usage_usec":
                        return int(v) / 1e6
            except OSError:
                return None
            return None
        ns = self._read_int("cpuacct", "cpuacct.usage")
        return ns / 1e9 if ns is not None else None

    def memory(self) -> tuple[int | None, int | None]:
        """(memory used now, peak memory) in bytes; None where the kernel does not say."""
        if self.version == 2:
            return self._read_int("memory", "memory.current"), self._read_int("memory", "memory.peak")
        return (
            self._read_int("memory", "memory.usage_in_bytes"),
            self._read_int("memory", "memory.max_usage_in_bytes"),
        )

    def pid_count(self) -> int | None:
        """Tasks (processes and threads) counted by the pids controller."""
        return self._read_int("pids", "pids.current")

    def oom_kills(self) -> int:
        """How many processes the kernel OOM killer killed in the memory group."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        p = self._file("memory", name)
        if p is None:
            return 0
        try:
            for line in p.read_text().splitlines():
                k, _, v = line.partition(" ")
                if k == "oom_kill" and v.strip().isdigit():
                    return int(v)
        except OSError:
            pass
        return 0


def _write(p: Path, value: str) -> None:
    p.write_text(value)


def create(layout: Layout, name: str, cpus: float, memory_bytes: int, max_pids: int) -> Group:
    """Create the workload's groups under `layout` and write its limits.

    A controller whose group cannot be created or limited is left out (and removed again), so the
    caller can see in `Group.enforced` what is really enforced and fall back for the rest.
    """
    group = Group(layout.version)
    quota = max(1000, int(cpus * CPU_PERIOD_US))
    for controller, parent in sorted(layout.parents.items()):
        d = parent / name
        try:
            d.mkdir(exist_ok=True)
            if layout.version == 2:
                if controller == "cpu":
                    _write(d / "cpu.max", f"{quota} {CPU_PERIOD_US}")
                    group.enforced["cpu"] = f"cpu.max {quota} {CPU_PERIOD_US}"
                elif controller == "memory":
                    _write(d / "memory.max", str(memory_bytes))
                    with contextlib.suppress(OSError):
                        _write(d / "memory.swap.max", "0")  # the limit is on memory, not memory+swap
                    group.enforced["memory"] = f"memory.max {memory_bytes}"
                elif controller == "pids":
                    _write(d / "pids.max", str(max_pids))
                    group.enforced["pids"] = f"pids.max {max_pids}"
            elif controller == "cpu":
                _write(d / "cpu.cfs_period_us", str(CPU_PERIOD_US))
                _write(d / "cpu.cfs_quota_us", str(quota))
                group.enforced["cpu"] = f"cpu.cfs_quota_us {quota} per {CPU_PERIOD_US}"
            elif controller == "memory":
                _write(d / "memory.limit_in_bytes", str(memory_bytes))
                # Without this a workload could page out past its limit into swap; optional
                # because memsw exists only when the kernel accounts swap.
                if (d / "memory.memsw.limit_in_bytes").exists():
                    with contextlib.suppress(OSError):
                        _write(d / "memory.memsw.limit_in_bytes", str(memory_bytes))
                group.enforced["memory"] = f"memory.limit_in_bytes {memory_bytes}"
            elif controller == "pids":
                _write(d / "pids.max", str(max_pids))
                group.enforced["pids"] = f"pids.max {max_pids}"
            group.dirs[controller] = str(d)
        except OSError:
            with contextlib.suppress(OSError):
                d.rmdir()
            if layout.version == 2:
                # One directory holds every controller: a failure leaves nothing usable.
                Group(2, {"x": str(d)}).remove(timeout=1.0)
                return Group(2)
    return group
