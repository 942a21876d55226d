"""The one thing runtimes run: a Workload, and the protocol every runtime implements.

A notebook server, one run of a job and one node instance are all Workloads; domain code turns
them into `Workload` specs and controllers drive a `Runtime`. Nothing here knows of projects,
users or jobs. Runtime calls block (a stop waits up to its grace period): async callers run
them in a worker thread.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from atoll.capacity import Inventory
    from atoll.storage.logs import LogStore

LOG_STREAMS = ("stdout", "stderr", "system")

# The PATH a workload gets unless it sets its own (its environment never comes from the server).
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Resources:
    """What a workload may use: CPU cores (fractions allowed), memory, GPUs and processes/threads."""

    cpus: float
    memory_mb: int
    gpus: int = 0
    max_pids: int = 4096

    def __post_init__(self) -> None:
        if self.cpus <= 0:
            raise ValueError("resources.cpus must be positive")
        if self.memory_mb <= 0:
            raise ValueError("resources.memory_mb must be positive")
        if self.gpus < 0 or self.max_pids <= 0:
            raise ValueError("resources.gpus must be >= 0 and resources.max_pids positive")


@dataclass(frozen=True)
class Mount:
    """Make `source` visible at `target`, a path relative to the workload's workdir."""

    source: Path
    target: str
    read_only: bool = False  # containers mount it read-only; the local runtime links it as is


def inside_workdir(rel: str, what: str) -> str:
    """``rel`` when it is a relative path inside a workload's workdir (a mount target, its cwd);
    ValueError naming ``what`` if not."""
    path = Path(rel)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ValueError(f"{what} {rel!r} must be a relative path inside the workdir")
    return rel


def check_cwd(cwd: str) -> str:
    """A workload's cwd, checked ("" for the workdir itself)."""
    return inside_workdir(cwd, "cwd") if cwd else ""


@dataclass(frozen=True)
class PythonEnv:
    """A built Python environment a command runs with: a prefix holding bin/ and
    lib/pythonX.Y/site-packages. Where the workload sees the server's files (the local and Ray
    runtimes) it is activated (first on PATH, VIRTUAL_ENV); a container runtime mounts it read-only
    and puts its packages on PYTHONPATH for the image's own python3."""

    prefix: Path
    venv: bool = True  # False: an interpreter's own prefix (no VIRTUAL_ENV, which would mislead it)

    def activate(self, environ: Mapping[str, str]) -> dict[str, str]:
        """``environ`` with this environment first on PATH (and VIRTUAL_ENV set, for a venv)."""
        env = dict(environ)
        env["PATH"] = os.pathsep.join([str(self.prefix / "bin"), *filter(None, [env.get("PATH")])])
        if self.venv:
            env["VIRTUAL_ENV"] = str(self.prefix)
        else:  # the server's own venv must not leak into a plain job
            env.pop("VIRTUAL_ENV", None)
        env.pop("PYTHONHOME", None)  # would point the venv's interpreter at another stdlib
        return env

    def site_packages(self) -> str | None:
        """Where its packages are, relative to the prefix (None when it has none)."""
        found = sorted(self.prefix.glob("lib/python*/site-packages"))
        return str(found[0].relative_to(self.prefix)) if found else None


@dataclass(frozen=True)
class Workload:
    """A command to run with resources, environment, mounts and ports."""

    id: str  # unique, [a-z0-9-]; names the state dir, the log directory and the cgroup
    command: list[str]  # argv, no shell: callers wanting one pass ["bash", "-c", ...]
    resources: Resources
    workdir: Path  # created if missing; also HOME unless env overrides it
    env: dict[str, str] = field(default_factory=dict)  # over a minimal base env, not the server's
    secret_env: dict[str, str] = field(default_factory=dict)  # env vars whose values logs redact
    mounts: tuple[Mount, ...] = ()
    # Env vars naming the server machine's own files (Atoll's SDK, a project's model outbox):
    # set over `env` where the workload sees those files; a container runtime leaves them out.
    host_env: dict[str, str] = field(default_factory=dict)
    # The Python environment the command uses (see PythonEnv); None: whatever the system or image has.
    python: PythonEnv | None = None
    # Where the command starts: a relative dir under workdir ("": the workdir itself, which
    # stays HOME).
    cwd: str = ""
    ports: tuple[int, ...] = ()  # allocated by the caller; exported as PORT, PORT_1, ...
    # For a container: the ports inside it that ports[i] (on the host's loopback) publish; empty:
    # the same numbers. The local runtime has no "inside" and ignores it.
    container_ports: tuple[int, ...] = ()
    gpu_ids: tuple[int, ...] = ()  # CUDA_VISIBLE_DEVICES ("" when empty, so no GPU leaks in)
    labels: dict[str, str] = field(default_factory=dict)
    # (uid, gid) the command runs as; None: the server's own user. A root server gives each
    # project its own uid, so a workload can read neither the server's files nor other projects'.
    run_as: tuple[int, int] | None = None
    # The login name of run_as (its project's): with a private mount namespace the workload sees a
    # passwd and a group entry under that name (runtime/local/accounts.py), and USER/LOGNAME are
    # set, so whoami, getpass.getuser(), git and ssh work. None: no entry of ours.
    user_name: str | None = None
    # The name of a warm template (see LocalRuntime.keep_warm): start on a process of that pool
    # that has already loaded the program, if one is ready, instead of a fresh one. The result is
    # the same workload (limits, user, logs, stop); only the start is faster. Runtimes without
    # warm pools start it fresh.
    warm: str | None = None
    # The image a container runtime (docker) runs the command in, present on its daemon; the local
    # runtime ignores it.
    image: str | None = None
    # The cluster node the scheduler placed it on (a Ray node id); "": the runtime's own machine or
    # choice. The local and Docker runtimes ignore it.
    node: str = ""
    # The project's tmp dir: with a root runtime that can (see runtime/local/sandbox.py), bound over the
    # workload's /tmp and /var/tmp in a mount namespace of its own, where /proc shows only the
    # processes of its own uid.
    tmp_dir: Path | None = None
    # The network namespace it joins (its project's, see runtime/local/netns.py), with the address its
    # servers bind to there ($HOST); None: the machine's own network, HOST=127.0.0.1.
    netns: str | None = None
    address: str | None = None


class WorkloadState(StrEnum):
    """Where a workload is in its life.

    STARTING: the supervisor runs but the command is not started yet.
    RUNNING: the command runs.
    EXITED: the command exited with code 0 (also after a stop it handled gracefully).
    FAILED: non-zero exit, death by a signal, or the command could not be started.
    LOST: the runtime lost track of it (its supervisor died without recording an outcome);
          whatever was left of it has been killed.
    """

    STARTING = "starting"
    RUNNING = "running"
    EXITED = "exited"
    FAILED = "failed"
    LOST = "lost"

    @property
    def finished(self) -> bool:
        """True for the final states (EXITED, FAILED, LOST)."""
        return self in (WorkloadState.EXITED, WorkloadState.FAILED, WorkloadState.LOST)


@dataclass
class WorkloadStatus:
    """What a runtime knows about one workload now."""

    id: str
    state: WorkloadState
    pid: int | None = None  # the command's pid (also its process group id, for the local runtime)
    exit_code: int | None = None
    signal: int | None = None  # the signal that killed it, when one did
    started_at: float | None = None  # unix time
    finished_at: float | None = None
    detail: str = ""  # one human line: "exited with code 1", "memory limit of 512 MB exceeded", ...


@dataclass
class Usage:
    """Resources a workload used: CPU time so far, memory now and at its peak, live processes."""

    cpu_seconds: float
    memory_bytes: int
    max_memory_bytes: int
    pids: int


@dataclass
class LogChunk:
    """A slice of a log stream: `offset` is where the next read starts; `eof` means the workload
    has finished and nothing more will come."""

    data: bytes
    offset: int
    eof: bool


def read_log(
    store: LogStore,
    status: Callable[[str], WorkloadStatus],
    workload_id: str,
    stream: str,
    offset: int,
    limit: int,
) -> LogChunk:
    """A runtime's ``logs()`` over the LogStore it writes to: logs outlive the runtime's state, so a
    forgotten workload's logs are still served (and are at their end). Raises UnknownWorkload if
    neither exists."""
    if stream not in LOG_STREAMS:
        raise ValueError(f"unknown log stream {stream!r}; use one of {', '.join(LOG_STREAMS)}")
    try:
        # Read the state before the data: if it was final then, the data read after is complete.
        finished = status(workload_id).state.finished
    except UnknownWorkload:
        if not store.exists(workload_id):
            raise
        finished = True
    data, nxt = store.read(workload_id, stream, offset, limit)
    return LogChunk(data, nxt, finished and nxt >= store.size(workload_id, stream))


class UnknownWorkload(LookupError):
    """The runtime has no state for this workload id (never started here, or forgotten)."""


class WorkloadExists(RuntimeError):
    """A workload with this id is already known to the runtime; forget() it before reusing the id."""


@runtime_checkable
class Runtime(Protocol):
    """Runs Workloads. Every method is idempotent where that makes sense and safe to call after a
    server restart: the runtime's state lives outside the server process."""

    name: str  # recorded on workload rows: their later calls come back to this runtime
    runs_images: bool  # runs workloads with an image (containers); see runtime/router.py
    # Its workloads join their project's network namespace (Workload.netns); False: it keeps
    # projects apart its own way (Docker: a network per project).
    uses_project_netns: bool

    def start(self, w: Workload) -> WorkloadStatus:
        """Start a workload; raises WorkloadExists if its id is in use."""
        ...

    def stop(self, workload_id: str, sig: int = signal.SIGTERM, grace: float = 10.0) -> WorkloadStatus:
        """Signal the workload's process group, wait up to `grace` seconds, then SIGKILL it. Idempotent."""
        ...

    def status(self, workload_id: str) -> WorkloadStatus:
        """The workload's current status; raises UnknownWorkload for an unknown id."""
        ...

    def logs(
        self, workload_id: str, stream: str = "stdout", offset: int = 0, limit: int = 1 << 20
    ) -> LogChunk:
        """Read a log stream ("stdout", "stderr" or "system") from a byte offset."""
        ...

    def usage(self, workload_id: str) -> Usage:
        """CPU seconds and memory used by the workload's processes."""
        ...

    def adopt(self) -> list[WorkloadStatus]:
        """After a server restart: the status of every workload this runtime knows, live ones re-adopted."""
        ...

    def forget(self, workload_id: str) -> None:
        """Drop the runtime's state of a workload (killing it first if it still runs); logs stay."""
        ...

    def append_system_log(self, workload_id: str, line: str) -> None:
        """Add one of Atoll's own messages to the workload's "system" log stream."""
        ...

    def address_of(self, w: Workload, node_address: str) -> str:
        """Where the server reaches the ports of ``w`` started on the node at ``node_address``."""
        ...

    def close(self) -> None:
        """At server shutdown: let go of connections and threads; workloads keep running."""
        ...


@runtime_checkable
class ClusterInventory(Protocol):
    """A runtime that spans machines (Ray): the scheduler places workloads on its nodes."""

    def inventory(self) -> Inventory:
        """The machines and what each has."""
        ...


@runtime_checkable
class WarmPools(Protocol):
    """A runtime that can keep processes loaded ahead of the workloads that name them
    (``Workload.warm``); see LocalRuntime.keep_warm. Runtimes without it start every workload fresh."""

    def keep_warm(self, key: str, python: Path, modules: Sequence[str], count: int) -> int:
        """Keep ``count`` processes of template ``key`` loaded; returns how many are ready."""
        ...

    def close_warm(self) -> None:
        """Stop every loaded process (at server shutdown)."""
        ...
