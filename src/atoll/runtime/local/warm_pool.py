"""Warm pools of the local runtime: Python processes parked with a template's modules already
imported (JupyterLab's, for notebooks), each under its own supervisor, claimed by a workload
that names the template, so it starts without paying for the imports.

A parked process lives in ``<state dir>/.warm/<template>/p<hex>/``; claiming renames that dir to
the workload's (atomic: two starts never take the same one) and wakes its supervisor, which then
reads the workload's spec like any other.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from atoll.runtime.base import DEFAULT_PATH
from atoll.runtime.local.proc_files import is_same_process, read_json, start_time, write_json
from atoll.runtime.local.state import Record, recent

log = logging.getLogger("atoll.runtime")
_WARM_KEY = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
WARM_RETRY_S = 60.0  # after a warm process failed to load its modules, before trying again

SpawnShim = Callable[..., "subprocess.Popen[bytes]"]


class WarmPool:
    """The parked processes of every template, under one state dir."""

    def __init__(self, root: Path, spawn_shim: SpawnShim, start_timeout: float) -> None:
        self.root = root
        self.spawn_shim = spawn_shim  # (dir, *args) -> the supervisor started in ``dir``
        self.start_timeout = start_timeout
        self._parked: dict[str, subprocess.Popen[bytes]] = {}  # parked dir name -> its shim
        self._warm_failed: dict[str, float] = {}  # template -> when a warm process last failed
        self._lock = threading.Lock()

    def claim(self, key: str, d: Path) -> tuple[bool, subprocess.Popen[bytes] | None]:
        """Take a ready parked process of ``key`` for the workload dir ``d``: (claimed?, the
        handle on its supervisor when this server spawned it, else None)."""
        parked = self._claim_dir(key, d)
        if parked is None:
            return False, None
        with self._lock:
            return True, self._parked.pop(parked, None)  # None if parked by an earlier server

    def _dir(self, key: str) -> Path:
        if not _WARM_KEY.match(key):
            raise ValueError(f"bad warm template name {key!r}")
        return self.root / key

    def _state(self, d: Path) -> str:
        """Whether a parked dir's process is "ready" (claimable), "loading" or "dead"."""
        rec = Record(d)
        if not rec.shim:  # keep_warm() is between creating the dir and recording the shim
            return "loading" if recent(d, self.start_timeout) else "dead"
        if not rec.shim_alive():
            return "dead"
        parked = read_json(d / "parked.json")
        if parked is None or (d / "failed.txt").exists():
            return "loading"  # the shim is writing down why its process ended, then exits
        alive = is_same_process(parked.get("pid"), parked.get("start_time"))
        return "ready" if alive else "loading"

    def keep(self, key: str, python: Path, modules: Sequence[str], count: int) -> int:
        """Keep ``count`` processes of template ``key`` parked: ``python`` with ``modules`` imported,
        each under a parked shim (see shim.park()), waiting for a workload that names ``key``.

        They run as the server's user, in no workload's cgroup, and are not metered: they hold
        memory, not CPU. A warm process that fails to load is reported in the server's log and
        retried after WARM_RETRY_S. Returns how many are ready now. Call it again to refill after
        claims; ``count`` 0 stops them all.
        """
        root = self._dir(key)
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._lock:  # reap parked shims that ended
            for name, p in list(self._parked.items()):
                if p.poll() is not None:
                    del self._parked[name]
        ready, keep = 0, []
        for d in sorted(root.iterdir()):
            state = self._state(d)
            if state == "dead":
                failed = d / "failed.txt"
                if failed.exists():
                    self._warm_failed[key] = time.monotonic()
                    why = failed.read_text(errors="replace").strip()[-1500:]
                    log.warning(
                        "a warm process of %s failed to load (retried in %.0f s): %s", key, WARM_RETRY_S, why
                    )
                self._discard(d)
                continue
            keep.append(d)
            ready += state == "ready"
        for d in keep[count:]:
            self._discard(d)
        failed_at = self._warm_failed.get(key)
        if failed_at is not None and time.monotonic() - failed_at < WARM_RETRY_S:
            return min(ready, count)
        for _ in range(count - len(keep)):
            d = root / f"p{secrets.token_hex(8)}"
            d.mkdir(mode=0o700)
            write_json(
                d / "warm.json",
                {
                    "python": str(python),
                    "modules": list(modules),
                    "env": {"PATH": DEFAULT_PATH, "LANG": "C.UTF-8", "HOME": "/"},
                },
            )
            proc = self.spawn_shim(d, "--park", str(d))
            write_json(d / "shim.json", {"pid": proc.pid, "start_time": start_time(proc.pid)})
            with self._lock:
                self._parked[d.name] = proc
        return min(ready, count)

    def _claim_dir(self, key: str, d: Path) -> str | None:
        """Move a ready parked process of ``key`` to the workload dir ``d`` (a rename: atomic, so
        two starts never take the same one); its parked name, or None when none is ready."""
        root = self._dir(key)
        if not root.is_dir():
            return None
        for p in sorted(root.iterdir()):
            if self._state(p) != "ready":
                continue
            try:
                os.rename(p, d)
            except OSError:
                continue  # taken meanwhile
            if self._state(d) == "ready":
                return p.name
            self._discard(d)  # died between the look and the rename
        return None

    def wake(self, d: Path) -> bool:
        """Tell the claimed shim in ``d`` its spec is there. False if it is gone (start fresh)."""
        rec = Record(d)
        if not rec.shim_alive() or rec.shim_pid is None:
            return False
        try:
            os.kill(rec.shim_pid, signal.SIGUSR1)
        except ProcessLookupError:
            return False
        return True

    def _discard(self, d: Path) -> None:
        rec = Record(d)
        if rec.shim_alive() and rec.shim_pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(rec.shim_pid, signal.SIGTERM)  # the shim kills its warm process's group
        parked = read_json(d / "parked.json") or {}
        pid = parked.get("pid")
        if pid and is_same_process(pid, parked.get("start_time")):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(pid), signal.SIGKILL)
        with self._lock:
            p = self._parked.pop(d.name, None)
        if p is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=5)
        shutil.rmtree(d, ignore_errors=True)

    def close(self) -> None:
        """Stop every parked process (at server shutdown: nothing warm outlives `atoll up`)."""
        root = self.root
        if not root.is_dir():
            return
        for key_dir in root.iterdir():
            for d in list(key_dir.iterdir()) if key_dir.is_dir() else []:
                self._discard(d)
