"""The local runtime: workloads as process trees on this machine, each under its own supervisor.

`start()` writes the workload's spec into `<state dir>/<workload id>/`, creates its cgroups and
launches `python -m atoll.runtime.local.shim` in a new session. The shim (see shim.py) starts the command
in its own process group, pumps its output into the LogStore and records the outcome in a file.
The server keeps no state of its own beyond a handle on shims it spawned (to reap them), so any
LocalRuntime over the same state dir — a restarted server — sees the same workloads.

Limits, by what `detect_limits()` found:
  cgroup v2/v1  CPU quota (cpu.max / cfs_quota_us), memory (memory.max / limit_in_bytes, the OOM
                killer ends the workload), process+thread count (pids.max); usage from the groups.
  rlimit        memory only, as an address-space bound (RLIMIT_AS = 2 × memory + 512 MiB, since
                address space runs well above resident memory; not set for GPU workloads, whose
                driver maps huge address ranges); CPU rate and process count are not limited;
                usage from /proc.
Processes are found and signalled by process group and session (the shim's pid) and, with
cgroups, by group membership — never by name.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import atoll
from atoll.runtime.base import (
    DEFAULT_PATH,
    LogChunk,
    UnknownWorkload,
    Usage,
    Workload,
    WorkloadExists,
    WorkloadState,
    WorkloadStatus,
    check_cwd,
    read_log,
)
from atoll.runtime.environment import workload_env
from atoll.runtime.local import cgroups, sandbox
from atoll.runtime.local.accounts import account_files
from atoll.runtime.local.limits import LimitSupport, detect_limits, limits_for
from atoll.runtime.local.mounts import chown_tree, link_mounts
from atoll.runtime.local.proc_files import start_time, write_json
from atoll.runtime.local.state import Record, recent, session_members, tree_usage
from atoll.runtime.local.warm_pool import WarmPool
from atoll.storage.logs import LogStore, check_id, system_line

log = logging.getLogger("atoll.runtime")
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


class LocalRuntime:
    """Runs Workloads as supervised process trees on this machine (see the module docstring)."""

    name = "local"
    runs_images = False
    uses_project_netns = True

    def __init__(
        self,
        state_dir: Path,
        log_store: LogStore,
        limits: LimitSupport | None = None,
        start_timeout: float = 15.0,
    ) -> None:
        """`limits` defaults to `detect_limits()`; pass `LimitSupport("rlimit", ...)` to force rlimits."""
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.log_store = log_store
        self.limits = limits if limits is not None else detect_limits()
        self.layout: cgroups.Layout | None = None
        if self.limits.mechanism.startswith("cgroup"):
            self.layout = self.limits.layout or cgroups.discover()
        self.start_timeout = start_timeout
        # Group names carry a hash of the state dir, so two Atoll servers (or test runs) on one
        # machine never share a group even with equal workload ids.
        self._tag = hashlib.sha256(str(self.state_dir.resolve()).encode()).hexdigest()[:8]
        self._shims: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()
        self._lost_lock = threading.Lock()
        self._sandbox_unavailable: str | None = None
        self.warm_pool = WarmPool(self.state_dir / ".warm", self._spawn_shim, start_timeout)

    @property
    def sandbox_unavailable(self) -> str:
        """Why workloads cannot get a private /tmp and /proc here ("" when they can); asked once."""
        if self._sandbox_unavailable is None:
            self._sandbox_unavailable = sandbox.supported()
        return self._sandbox_unavailable

    # --- helpers ---------------------------------------------------------------------------

    def _dir(self, workload_id: str) -> Path:
        return self.state_dir / check_id(workload_id)

    def _record(self, workload_id: str) -> Record:
        d = self._dir(workload_id)
        if not (d / "spec.json").exists():
            raise UnknownWorkload(workload_id)
        with self._lock:
            # Reap a shim this process spawned, so a finished one does not linger as a zombie.
            p = self._shims.get(workload_id)
            if p is not None and p.poll() is not None:
                del self._shims[workload_id]
        return Record(d)

    def _status_of(self, workload_id: str, rec: Record) -> WorkloadStatus:
        started_at = rec.started.get("started_at")
        if rec.final is not None:
            f = rec.final
            return WorkloadStatus(
                id=workload_id,
                state=WorkloadState(f["state"]),
                pid=rec.child_pid,
                exit_code=f.get("exit_code"),
                signal=f.get("signal"),
                started_at=started_at,
                finished_at=f.get("finished_at"),
                detail=f.get("detail", ""),
            )
        if rec.child_pid:
            return WorkloadStatus(
                workload_id,
                WorkloadState.RUNNING,
                rec.child_pid,
                started_at=started_at,
                detail=f"running as pid {rec.child_pid}",
            )
        return WorkloadStatus(workload_id, WorkloadState.STARTING, detail="supervisor starting")

    def _kill_remains(self, rec: Record) -> None:
        """SIGKILL whatever is left of a workload: its process group (in the shim's session) and,
        with cgroups, every process in its groups."""
        child, session = rec.child_pid, rec.shim_pid
        if child and rec.child_alive():
            # The leader is alive, so the group id is still ours: killpg hits the tree at once.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child, signal.SIGKILL)
        if child and session:
            for _ in range(20):
                left = session_members(session, child)
                if not left:
                    break
                for pid in left:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.02)
        if rec.group is not None:
            rec.group.kill_all()

    # --- the Runtime protocol ---------------------------------------------------------------

    def start(self, w: Workload) -> WorkloadStatus:
        """Start `w` under a new supervisor; returns once the command runs (or failed to start).

        Raises WorkloadExists if the id is known here (forget() it first), ValueError for a bad
        spec. If the supervisor is slow to start, the status returned may be STARTING.
        """
        check_id(w.id)
        if not w.command or not all(isinstance(a, str) for a in w.command):
            raise ValueError("workload command must be a non-empty list of strings")
        env = workload_env(w)
        d = self._dir(w.id)
        # A warm process of the template asked for, if one is parked: its dir becomes this one.
        claimed, warm = self.warm_pool.claim(w.warm, d) if w.warm and not d.exists() else (False, None)
        if not claimed:
            try:
                d.mkdir(mode=0o700)
            except FileExistsError:
                raise WorkloadExists(f"workload {w.id!r} is already known to the local runtime") from None
        group: cgroups.Group | None = None
        # The secret values (where no runtime-owned variable replaced them) stay out of spec.json.
        secret = {k: env[k] for k, v in w.secret_env.items() if env.get(k) == v}
        sandbox_spec: dict[str, object] | None = None
        if w.run_as is not None and not self.sandbox_unavailable:
            sandbox_spec = {"tmp": str(w.tmp_dir) if w.tmp_dir else None, "netns": w.netns}
        try:
            if sandbox_spec is not None and w.run_as is not None and w.user_name:
                login, sandbox_spec["files"] = account_files(d, w.user_name, *w.run_as, home=w.workdir)
                env["USER"] = env["LOGNAME"] = login  # what getpass.getuser() and git read first
            w.workdir.mkdir(parents=True, exist_ok=True)
            link_mounts(w)
            if w.run_as is not None:
                chown_tree(w.workdir, *w.run_as)
            group, rlimits, enforced = limits_for(self.layout, f"atoll-{self._tag}-{w.id}", w)
            spec = {
                "id": w.id,
                "command": list(w.command),
                "workdir": str(w.workdir / check_cwd(w.cwd)),
                "env": {k: v for k, v in env.items() if k not in secret},
                "sandbox": sandbox_spec,
                "log_root": str(self.log_store.root.absolute()),
                "group": group.to_dict() if group else None,
                "rlimits": rlimits,
                "enforced": enforced,
                "memory_mb": w.resources.memory_mb,
                "labels": w.labels,
                "run_as": list(w.run_as) if w.run_as else None,
            }
            # Secrets go in a file of their own, which the shim removes once it has read them.
            write_json(d / "secrets.json", {"env": secret})
            write_json(d / "spec.json", spec)
            if warm is not None and self.warm_pool.wake(d):
                proc = warm
            else:
                proc = self._spawn_shim(d, str(d))
                write_json(d / "shim.json", {"pid": proc.pid, "start_time": start_time(proc.pid)})
            if proc is not None:
                with self._lock:
                    self._shims[w.id] = proc
        except BaseException:
            if group is not None:
                group.remove()
            shutil.rmtree(d, ignore_errors=True)
            raise
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if (d / "started.json").exists() or (d / "status.json").exists():
                break
            if (proc.poll() is not None) if proc is not None else not Record(d).shim_alive():
                break
            time.sleep(0.01)
        return self.status(w.id)

    def _spawn_shim(self, d: Path, *args: str) -> subprocess.Popen[bytes]:
        """`python -m atoll.runtime.local.shim ARGS` in a new session (it outlives the server), in ``d``."""
        # The shim gets a minimal environment too; PYTHONPATH makes sure it runs this very atoll
        # package, wherever it was imported from.
        pkg_root = str(Path(atoll.__file__).resolve().parent.parent)
        shim_env = {"PATH": os.environ.get("PATH", DEFAULT_PATH), "LANG": "C.UTF-8"}
        shim_env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_root, os.environ.get("PYTHONPATH", "")) if p)
        with open(d / "shim.err", "ab") as err:
            return subprocess.Popen(
                [sys.executable, "-m", "atoll.runtime.local.shim", *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                cwd=d,
                env=shim_env,
                close_fds=True,
                start_new_session=True,
            )

    def address_of(self, w: Workload, node_address: str) -> str:
        return w.address or node_address  # its project's own address in a network namespace

    def close(self) -> None:
        """Nothing to let go of: supervisors outlive the server (warm pools close by close_warm)."""

    # --- warm pools (beyond the protocol) ----------------------------------------------------

    def keep_warm(self, key: str, python: Path, modules: Sequence[str], count: int) -> int:
        """See WarmPool.keep (runtime/local/warm_pool.py)."""
        return self.warm_pool.keep(key, python, modules, count)

    def close_warm(self) -> None:
        """Stop every parked process (at server shutdown: nothing warm outlives `atoll up`)."""
        self.warm_pool.close()

    def status(self, workload_id: str) -> WorkloadStatus:
        """The workload's status from its state dir; a dead supervisor without an outcome makes it
        LOST (and whatever is left of it is killed). Raises UnknownWorkload."""
        rec = self._record(workload_id)
        if rec.final is None and not rec.shim and self._young(rec):
            # start() (maybe in another thread) has not recorded the supervisor's pid yet.
            return self._status_of(workload_id, rec)
        if rec.final is None and not rec.shim_alive():
            with self._lost_lock:  # one thread records the loss, the others read it
                rec = Record(rec.dir)  # it may have written the outcome just before exiting
                if rec.final is None:
                    self._mark_lost(workload_id, rec)
                    rec = Record(rec.dir)
        return self._status_of(workload_id, rec)

    def _young(self, rec: Record) -> bool:
        return recent(rec.dir / "spec.json", self.start_timeout)

    def _mark_lost(self, workload_id: str, rec: Record) -> None:
        self._kill_remains(rec)
        detail = (
            f"lost: its supervisor (pid {rec.shim_pid}) ended without recording an outcome; "
            "remaining processes were killed"
        )
        with contextlib.suppress(OSError):
            # A supervisor that crashed (rather than being killed) left its traceback here.
            err = (rec.dir / "shim.err").read_text(errors="replace").strip().splitlines()
            if err:
                detail += f" (supervisor error: {err[-1][:300]})"
        self.append_system_log(workload_id, detail)  # before the status: then the log is complete
        write_json(
            rec.dir / "status.json",
            {
                "state": "lost",
                "exit_code": None,
                "signal": None,
                "finished_at": time.time(),
                "detail": detail,
            },
        )

    def stop(self, workload_id: str, sig: int = signal.SIGTERM, grace: float = 10.0) -> WorkloadStatus:
        """Send `sig` to the workload's process group, wait up to `grace` seconds for it to end,
        then SIGKILL the group (and everything in its cgroups). Idempotent: a finished workload's
        status is returned unchanged."""
        st = self.status(workload_id)
        if st.state.finished:
            return st
        d = self._dir(workload_id)
        name = signal.Signals(sig).name
        if not (d / "stop.json").exists():
            write_json(d / "stop.json", {"signal": int(sig), "signal_name": name, "at": time.time()})
            self.append_system_log(workload_id, f"stop requested: {name}, then SIGKILL after {grace:g} s")
        deadline = time.monotonic() + grace
        signalled = False
        while True:
            rec = self._record(workload_id)
            st = self.status(workload_id)
            if st.state.finished:
                return st
            if not signalled and rec.child_pid:
                # The shim is alive and has not reaped the command, so the group id is still ours.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(rec.child_pid, sig)
                signalled = True
            if time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        rec = self._record(workload_id)
        if rec.child_pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(rec.child_pid, signal.SIGKILL)
            if rec.group is not None:
                rec.group.kill_all()
        elif rec.shim_alive() and rec.shim_pid:
            # Still starting: take the supervisor down; status() then records the workload LOST.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(rec.shim_pid, signal.SIGKILL)
        end = time.monotonic() + 10.0
        while time.monotonic() < end:
            st = self.status(workload_id)
            if st.state.finished:
                return st
            time.sleep(0.02)
        return st

    def logs(
        self, workload_id: str, stream: str = "stdout", offset: int = 0, limit: int = 1 << 20
    ) -> LogChunk:
        """Read a stream from a byte offset. Logs outlive the runtime state: a forgotten workload's
        logs are still served (and are at their end). Raises UnknownWorkload if neither exists."""
        return read_log(self.log_store, self.status, workload_id, stream, offset, limit)

    def usage(self, workload_id: str) -> Usage:
        """CPU seconds and memory of the workload: from its cgroups where it has them, else summed
        over its live processes in /proc (after it ended: what the supervisor recorded)."""
        rec = self._record(workload_id)
        cpu: float | None = None
        mem = peak = npids = None
        if rec.group is not None and rec.group.exists():
            cpu = rec.group.cpu_seconds()
            mem, peak = rec.group.memory()
            npids = len(rec.group.pids())
        if None in (cpu, mem, peak):
            tree = tree_usage(rec) if rec.final is None else None
            if tree is not None:
                t_cpu, t_mem, t_peak, t_n = tree
                cpu = t_cpu if cpu is None else cpu
                mem = t_mem if mem is None else mem
                peak = max(t_peak, t_mem) if peak is None else peak
                npids = t_n if npids is None else npids
            elif rec.final is not None:
                cpu = float(rec.final.get("cpu_seconds") or 0.0) if cpu is None else cpu
                peak = int(rec.final.get("max_rss_bytes") or 0) if peak is None else peak
        return Usage(cpu or 0.0, mem or 0, max(peak or 0, mem or 0), npids or 0)

    def adopt(self) -> list[WorkloadStatus]:
        """Every workload in the state dir: RUNNING ones are simply followed again (the shims never
        depended on the server), finished ones report their recorded outcome, and ones whose
        supervisor died without an outcome become LOST with their remains killed."""
        found = []
        for d in sorted(self.state_dir.iterdir()):
            if d.is_dir() and (d / "spec.json").exists():
                with contextlib.suppress(UnknownWorkload, ValueError):
                    found.append(self.status(d.name))
        return found

    def forget(self, workload_id: str) -> None:
        """Kill the workload if it still runs, remove its cgroups and state dir; logs stay.
        A no-op for an unknown id."""
        d = self._dir(workload_id)
        if not d.is_dir():
            return
        if (d / "spec.json").exists():
            st = self.status(workload_id)
            if not st.state.finished:
                self.stop(workload_id, signal.SIGKILL, grace=0)
            rec = self._record(workload_id)
            self._kill_remains(rec)
            if rec.group is not None and not rec.group.remove():
                self.append_system_log(
                    workload_id, f"could not remove cgroups {', '.join(sorted(set(rec.group.dirs.values())))}"
                )
        with self._lock:
            p = self._shims.pop(workload_id, None)
        if p is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=5)
        shutil.rmtree(d, ignore_errors=True)

    def append_system_log(self, workload_id: str, line: str) -> None:
        """Add a timestamped line to the workload's "system" stream (kept like the other logs)."""
        self.log_store.append(workload_id, "system", system_line(line))

    # --- beyond the protocol ----------------------------------------------------------------

    def enforcement(self, workload_id: str) -> dict[str, Any]:
        """What limits the workload runs under: mechanism lines and its cgroup directories."""
        rec = self._record(workload_id)
        return {
            "mechanism": self.limits.mechanism,
            "enforced": list(rec.spec.get("enforced", [])),
            "cgroups": dict(rec.group.dirs) if rec.group else {},
            "rlimits": dict(rec.spec.get("rlimits", {})),
        }
