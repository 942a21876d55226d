"""Processes for the benchmarks: started in their own session, stopped by process group, and
their CPU time read from /proc (to say where a request's CPU goes)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
RAY_WORKER_PORTS = range(10002, 20000)  # Ray's (MACHINE-NOTES): keep every port of ours outside


class BenchError(Exception):
    """A step of the benchmark failed (or a contender could not be measured); the message says why."""


def free_port() -> int:
    """A free port on 127.0.0.1, outside Ray's worker port range."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in RAY_WORKER_PORTS:
            return port


def kill_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


@dataclass
class Process:
    """A subprocess in its own session (its process group is its own), logging to a file."""

    argv: list[str]
    env: dict[str, str]
    log_path: Path
    cwd: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def check_alive(self, what: str) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise BenchError(f"{what} exited with code {self.proc.returncode}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM the process group, SIGKILL what is left of it after ``grace_s``."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            kill_group(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass
        kill_group(self.proc.pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(timeout=5)


def wait_healthy(proc: Process, url: str, timeout_s: float) -> None:
    """Until ``atoll up`` at ``url`` answers /healthz; BenchError if it dies or takes too long."""
    wait_answer(f"{url}/healthz", timeout_s, "atoll up", lambda: proc.check_alive("atoll up"), proc.log_tail)


def wait_answer(
    url: str,
    timeout_s: float,
    what: str,
    alive: Callable[[], None] = lambda: None,
    log_tail: Callable[[], str] = lambda: "",
) -> None:
    """Until a GET of ``url`` answers 200; BenchError if ``alive`` raises or it takes too long."""
    import httpx  # only the benches that start servers need it

    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=5, trust_env=False) as c:
        while True:
            alive()
            with contextlib.suppress(httpx.HTTPError):
                if c.get(url, timeout=1).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise BenchError(f"{what} did not answer in {timeout_s:.0f} s\n{log_tail()}")
            time.sleep(0.05)


# -- /proc -----------------------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (index 0 = state, as field 3 in proc(5))."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (all its threads)."""
    f = _stat(pid)
    return (int(f[11]) + int(f[12])) / CLK_TCK if f else 0.0


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds of the live processes of process group ``pgid``."""
    total = 0.0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            f = _stat(int(entry.name))
            if f and int(f[2]) == pgid:
                total += (int(f[11]) + int(f[12])) / CLK_TCK
    return total


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def with_marker(marker: str) -> list[int]:
    """Pids of live processes whose environment holds ``marker`` (set by us for what we start)."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                environ = Path(f"/proc/{entry.name}/environ").read_bytes()
            except OSError:
                continue
            if marker.encode() in environ:
                found.append(int(entry.name))
    return found


def machine_busy_seconds() -> float:
    """CPU seconds all cores of the machine spent busy (not idle or waiting for I/O) since boot."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(x) for x in fields]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks[:8]) - idle) / CLK_TCK  # user … steal; guest time is already in user


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of one process (all its threads)."""
    f = _stat(pid)
    return (int(f[11]) / CLK_TCK, int(f[12]) / CLK_TCK) if f else (0.0, 0.0)


def remove_networks(workdir: Path) -> None:
    """Remove the project network namespaces the Atoll servers of a run under ``workdir`` made
    (they outlive their server by design, for its next start): the run's servers are stopped and
    their data dirs about to go, so nothing would ever reuse or remove them."""
    from atoll.runtime.local.netns import ProjectNetworks

    for state_dir in [*workdir.glob("*/runtime"), *workdir.glob("*/*/runtime")]:
        if state_dir.is_dir():
            try:
                ProjectNetworks(state_dir).remove_all()
            except Exception as e:  # no root, no `ip`: there were none to remove
                print(f"(could not remove the project networks of {state_dir}: {e})", file=sys.stderr)
