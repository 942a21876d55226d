"""Small helpers the local runtime and its supervisors share: JSON state files written whole,
and a process's identity from /proc (pid plus start time, so a reused pid is never taken for
ours). Standard library only: the supervisor's start-up time is part of every workload start."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write a JSON file atomically (a reader sees the old file or the whole new one)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def take_secrets(state: Path) -> dict[str, str]:
    """The workload's secret env vars (``secrets.json``, written 0600 by the runtime), read once
    and removed."""
    path = state / "secrets.json"
    data = read_json(path)
    path.unlink(missing_ok=True)
    return dict((data or {}).get("env", {}))


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON file's content, or None when it does not exist (yet)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return data if isinstance(data, dict) else None


def proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat from field 3 (state) on, or None when there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    return raw[raw.rfind(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    """The process's start time (clock ticks since boot), None if it is gone or a zombie.

    A pid plus its start time names one process for good: pids are reused, start times are not.
    """
    st = proc_stat(pid)
    if st is None or st[0] in ("Z", "X"):
        return None
    return int(st[19])


def is_same_process(pid: int | None, started: int | None) -> bool:
    """Whether `pid` is still the live process that had start time `started`."""
    return bool(pid) and started is not None and start_time(pid or 0) == started
