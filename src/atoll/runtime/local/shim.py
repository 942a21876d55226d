"""The supervisor of one local workload: `python -m atoll.runtime.local.shim <state dir of the workload>`.

The local runtime starts one shim per workload in a new session, so it outlives the server. The
shim reads `spec.json` from the state dir, starts the command in its own process group (inside
the workload's cgroups, under its rlimits), pumps the command's stdout/stderr into the log store
with secret values redacted, waits for it, kills whatever it left behind in its group, and writes
the outcome to `status.json` atomically. Because the outcome lives in a file written by a process
that is not the server, a server restart loses nothing.

Files in a workload's state dir (all JSON, each written whole by one writer):
  spec.json     written by the server before the shim starts: what to run and how
  shim.json     written by the server: the shim's pid and /proc start time
  started.json  written by the shim once the command runs: its pid (= process group) and start time
  stop.json     written by the server when a stop is requested (so the outcome says "stopped")
  status.json   the final outcome: by the shim, or by the server when the shim died (LOST)
  shim.err      the shim's own stderr, for a crash of the shim itself
A parked shim (``--park``, see park()) also has warm.json (its template, by the server),
parked.json (its warm process's pid, by the shim) and failed.txt (why that process ended early).

The small helpers both sides share (JSON files, /proc reads) are in proc_files.py; the redactor
and the output pump in redaction.py. The shim stays light to import: its start-up time is part
of every workload start.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from atoll.runtime.local import sandbox
from atoll.runtime.local.cgroups import Group
from atoll.runtime.local.proc_files import (
    read_json,
    start_time,
    take_secrets,
    write_json,
)
from atoll.runtime.redaction import Redactor, pump, write_all
from atoll.storage.logs import LogStore, system_line

PR_SET_PDEATHSIG = 1


# --- the supervisor -----------------------------------------------------------------------------


def _describe_exit(code: int | None, sig: int | None) -> str:
    if sig is not None:
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"killed by signal {sig} ({name})"
    return f"exited with code {code}"


class Shim:
    """One run of the supervisor over a workload state dir."""

    def __init__(self, state: Path) -> None:
        self.state = state
        spec = read_json(state / "spec.json")
        if spec is None:
            raise SystemExit(f"no spec.json in {state}")
        self.spec = spec
        self.id: str = spec["id"]
        self.logs = LogStore(Path(spec["log_root"]))
        self.group = Group.from_dict(spec["group"]) if spec.get("group") else None
        # Secret values come in a file of their own that is gone once read: nothing on disk holds
        # them in plain text while the workload runs.
        secret_env = take_secrets(state)
        self.env: dict[str, str] = {**spec["env"], **secret_env}
        self.redactor_secrets: list[str] = [v for v in secret_env.values() if v]
        self.child_pid: int | None = None
        self._shim_pid = os.getpid()
        # Looked up before the fork: the child between fork and exec should only make syscalls.
        try:
            self._prctl: Any = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):
            self._prctl = None
        self._libc = sandbox.libc() if spec.get("sandbox") else None
        self._system = self.logs.open_append(self.id, "system")

    def system(self, text: str) -> None:
        """Append a line to the workload's system log."""
        write_all(self._system, system_line(text))

    def _finish(self, state: str, code: int | None, sig: int | None, detail: str, **extra: Any) -> None:
        # The log line first: once status.json exists, readers take the logs as complete (eof).
        self.system(detail)
        write_json(
            self.state / "status.json",
            {
                "state": state,
                "exit_code": code,
                "signal": sig,
                "finished_at": time.time(),
                "detail": detail,
                **extra,
            },
        )
        # Touched once the outcome is on disk: the server's log watch (storage/log_watch.py) takes
        # that as "collect it now" instead of waiting for its next poll.
        with contextlib.suppress(OSError):
            os.utime(self._system.fileno())

    def _preexec(self) -> None:
        # Runs in the forked child before exec (the shim has no other thread yet, so this is safe).
        try:
            # Join the cgroups first, so everything the command allocates is charged to the workload.
            if self.group is not None:
                self.group.join()
            for name, value in self.spec.get("rlimits", {}).items():
                res = getattr(resource, name)
                _soft, hard = resource.getrlimit(res)
                # Only lowering is allowed without CAP_SYS_RESOURCE: never ask above the hard limit.
                v = value if hard == resource.RLIM_INFINITY else min(value, hard)
                resource.setrlimit(res, (v, v))
            # Files the workload makes are its own user's alone unless it says otherwise.
            os.umask(0o077)
            box = self.spec.get("sandbox")
            if box:  # as root still: its own /tmp and a /proc that hides other users' processes
                sandbox.enter(self._libc, box.get("tmp"), box.get("files"))
                if box.get("netns"):  # its project's network: its loopback, its address
                    sandbox.join_netns(self._libc, box["netns"])
            run_as = self.spec.get("run_as")
            if run_as:
                # Last, after joining the cgroups (which needs root): become the workload's user
                # for good, with no supplementary groups.
                uid, gid = run_as
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)
        except Exception as e:
            # Popen only reports "Exception occurred in preexec_fn": say what it was, then refuse
            # to run the command without its limits.
            os.write(self._system.fileno(), system_line(f"could not apply limits: {e}"))
            raise
        # The shim ignores SIGHUP; an ignored signal stays ignored across exec, so undo it.
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        # If the shim dies, its command dies too, instead of running on unsupervised and unlogged.
        if self._prctl is not None:
            self._prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
            if os.getppid() != self._shim_pid:  # the shim died before prctl took effect
                os._exit(1)

    def _on_term(self, signum: int, _frame: Any) -> None:
        # `kill <shim pid>` acts like a stop: pass the signal on to the command's group; the shim
        # stays to record the outcome.
        if self.child_pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.child_pid, signum)

    def _handle_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def run(self) -> int:
        """Start the command, pump its output, wait, record the outcome; returns the shim's exit code."""
        self._handle_signals()
        cmd: list[str] = self.spec["command"]
        if (self.state / "stop.json").exists():
            self._finish("failed", None, None, "stopped before it started")
            return 0
        try:
            proc = subprocess.Popen(
                cmd,
                cwd=self.spec["workdir"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                close_fds=True,
                process_group=0,  # its own group, so a stop signals the whole tree with killpg
                preexec_fn=self._preexec,
            )
        except (OSError, subprocess.SubprocessError, ValueError) as e:
            self._finish("failed", None, None, f"could not start {cmd[0]!r}: {e}")
            return 0
        return self._supervise(proc, "started")

    def run_warm(self, proc: subprocess.Popen[bytes]) -> int:
        """Hand a claimed warm process (see park()) its workload, then supervise it like run().

        The process waits on its stdin: it goes into the workload's cgroups and under its rlimits
        from here (as root), and only then gets argv, env, working dir and user, switches to that
        user itself and runs the program. Nothing of the workload ran in it before.
        """
        self._handle_signals()
        cmd: list[str] = self.spec["command"]
        assert proc.stdin is not None
        try:
            if (self.state / "stop.json").exists():
                raise RuntimeError("stopped before it started")
            if self.group is not None:
                self.group.join(proc.pid)
            for name, value in self.spec.get("rlimits", {}).items():
                res = getattr(resource, name)
                _soft, hard = resource.prlimit(proc.pid, res)
                v = value if hard == resource.RLIM_INFINITY else min(value, hard)
                resource.prlimit(proc.pid, res, (v, v))
            claim = {
                "argv": cmd,
                "env": self.env,
                "cwd": self.spec["workdir"],
                "run_as": self.spec.get("run_as"),
                "sandbox": self.spec.get("sandbox"),
            }
            proc.stdin.write(json.dumps(claim).encode())
            proc.stdin.close()
        except (OSError, RuntimeError, ValueError) as e:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            self._finish("failed", None, None, f"could not start {cmd[0]!r} on a warm process: {e}")
            return 0
        return self._supervise(proc, "started on a warm process")

    def _supervise(self, proc: subprocess.Popen[bytes], how: str) -> int:
        cmd: list[str] = self.spec["command"]
        redactor = Redactor(self.redactor_secrets)
        self.child_pid = proc.pid
        started_at = time.time()
        write_json(
            self.state / "started.json",
            {"pid": proc.pid, "start_time": start_time(proc.pid), "started_at": started_at},
        )
        shown = redactor.redact(" ".join(cmd).encode()).decode(errors="replace")
        limits = "; ".join(self.spec.get("enforced", [])) or "none"
        self.system(f"{how} pid {proc.pid}: {shown[:500]} (limits: {limits})")

        assert proc.stdout is not None and proc.stderr is not None
        pumps = []
        for stream, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr)):
            # The pump owns the descriptor from here; detach it from Popen's file object.
            fd = os.dup(pipe.fileno())
            pipe.close()
            out = self.logs.open_append(self.id, stream)
            t = threading.Thread(target=pump, args=(fd, out, Redactor(self.redactor_secrets)), daemon=True)
            t.start()
            pumps.append(t)

        # Wait without reaping, so the command's pid (its group id) cannot be reused while we kill
        # what it left behind in its group; then reap it and take its resource usage.
        with contextlib.suppress(ChildProcessError):
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        if self.group is not None:
            self.group.kill_all()
        _, status, ru = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)  # keeps Popen from reaping it again
        for t in pumps:
            # A process that left the group (setsid) may still hold the pipe: do not wait forever.
            t.join(timeout=5.0)

        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        detail = _describe_exit(code, sig)
        if self.group is not None and self.group.oom_kills() > 0:
            detail += (
                f"; memory limit of {self.spec['memory_mb']} MB exceeded "
                "(the kernel's OOM killer ended a process)"
            )
        stop = read_json(self.state / "stop.json")
        if stop is not None:
            detail = f"stopped on request ({stop.get('signal_name', 'signal')}): {detail}"
        self._finish(
            "exited" if code == 0 else "failed",
            code,
            sig,
            detail,
            started_at=started_at,
            cpu_seconds=ru.ru_utime + ru.ru_stime,
            max_rss_bytes=ru.ru_maxrss * 1024,
        )
        return 0


# --- warm processes -----------------------------------------------------------------------------

WARM_SCRIPT = Path(__file__).with_name("warm.py")  # stdlib only: runs on the template's Python
WARM_STDERR_KEEP = 4000
WARM_LOADED = b"atoll-warm: loaded\n"  # what warm.py writes on its stdout once its modules are in


def _warm_preexec(shim_pid: int, prctl: Any) -> None:
    signal.pthread_sigmask(signal.SIG_SETMASK, set())  # the shim blocks the claim signals; not it
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != shim_pid:
            os._exit(1)


def park(state: Path) -> int:
    """Keep one warm process for a later workload: `python -m atoll.runtime.local.shim --park DIR`.

    DIR holds `warm.json` (the template: python and the modules to load). The shim starts
    `python warm.py MODULES…` in its own process group (still as the server's user, in no cgroup,
    running nothing of any workload), writes `parked.json` and waits. The runtime claims it by
    renaming DIR to a workload's state dir, writing `spec.json` there and sending SIGUSR1; the
    shim (whose working dir is DIR, so the rename does not lose it) then carries on as that
    workload's supervisor (Shim.run_warm). SIGTERM, or the warm process dying, ends the shim.
    """
    os.chdir(state)
    here = Path(".")
    template = read_json(here / "warm.json") or {}
    waits = {signal.SIGUSR1, signal.SIGTERM, signal.SIGINT, signal.SIGCHLD}  # SIGCHLD: it died
    signal.pthread_sigmask(signal.SIG_BLOCK, waits)  # before parked.json: a claim is never lost
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        prctl: Any = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        prctl = None
    me = os.getpid()
    proc = subprocess.Popen(
        [str(template["python"]), str(WARM_SCRIPT), *template.get("modules", [])],
        cwd="/",
        env=template.get("env") or {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        close_fds=True,
        process_group=0,
        preexec_fn=lambda: _warm_preexec(me, prctl),
    )
    # parked.json says "claimable": only once the modules are loaded (warm.py says so on its
    # stdout), so a start never claims a process still importing and waits for it.
    loading = _loaded(proc, waits)
    if loading == "stop":  # asked to stop while it loaded
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return 0
    if loading == "loaded":
        write_json(here / "parked.json", {"pid": proc.pid, "start_time": start_time(proc.pid)})
    else:
        proc.wait()  # it ended: the loop below records why
    while True:
        info = signal.sigtimedwait(waits, 1.0)
        if proc.poll() is not None:  # it could not load the modules: keep why, for the runtime
            assert proc.stderr is not None
            err = proc.stderr.read()[-WARM_STDERR_KEEP:].decode(errors="replace")
            (here / "failed.txt").write_text(f"exit code {proc.returncode}: {err}")
            return 0
        if info is None or info.si_signo == signal.SIGCHLD:
            continue
        if info.si_signo != signal.SIGUSR1:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return 0
        if (here / "spec.json").exists():
            break
    signal.pthread_sigmask(signal.SIG_UNBLOCK, waits)
    return Shim(Path(os.getcwd())).run_warm(proc)


def _loaded(proc: subprocess.Popen[bytes], waits: set[signal.Signals]) -> str:
    """Wait for the warm process's "loaded" line: "loaded", "ended" (it exited first) or "stop"
    (SIGTERM or SIGINT came meanwhile). Reads the pipe's descriptor itself: nothing may stay in
    a buffer of Python's, since the workload's own output is pumped from that descriptor later
    (the line is the last thing written before the claim, so nothing follows it)."""
    assert proc.stdout is not None
    fd, seen = proc.stdout.fileno(), b""
    while True:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                return "ended"
            seen = (seen + chunk)[-4 * len(WARM_LOADED) :]  # import chatter, then the line
            if seen.endswith(WARM_LOADED):
                return "loaded"
            continue
        info = signal.sigtimedwait(waits, 0)
        if info is not None and info.si_signo in (signal.SIGTERM, signal.SIGINT):
            return "stop"


def main(argv: list[str] | None = None) -> int:
    """Entry point: `python -m atoll.runtime.local.shim STATE_DIR` (or `--park DIR`, see park())."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 2 and args[0] == "--park":
        return park(Path(args[1]))
    if len(args) != 1:
        print("usage: python -m atoll.runtime.local.shim STATE_DIR | --park DIR", file=sys.stderr)
        return 2
    return Shim(Path(args[0])).run()


if __name__ == "__main__":
    sys.exit(main())
