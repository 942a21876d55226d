"""The Docker runtime: workloads as containers, through the Docker Engine API (the `docker` SDK).

A node can run "from any image" and a job with `env.docker`: `Workload.image` names an image that
is already on the daemon (built, loaded or imported there; this runtime never pulls from a
registry). The container is the runtime's state: it is named `atoll-<workload id>` and labelled
`atoll.workload=<id>`, so any DockerRuntime over the same daemon (a restarted server) finds it.

How a Workload maps onto a container:
  command      argv, no shell, under Docker's init (tini) as PID 1, which reaps zombies and passes
               a stop signal to the command's whole process group (TINI_KILL_PROCESS_GROUP), as
               the local runtime signals its group
  env          the local runtime's environment (workload_env), except PATH, left to the image
               unless the caller sets it, and CUDA_VISIBLE_DEVICES with GPUs (the container sees
               only its devices, numbered from 0)
  workdir      bind-mounted at the same path and (with cwd) the working dir; HOME; mounts are
               bind mounts at workdir/target
  python       its prefix bound read-only at workdir/.python-env, site-packages on PYTHONPATH
               (the image's python3 runs); host_env is left out
  ports        published on 127.0.0.1 only (docker-proxy connects to the container)
  network      its project's own Docker network (docker_networks.py) when the runtime has a
               network tag; else the daemon's default bridge
  resources    NanoCpus, Memory (= memory+swap: no swap), PidsLimit; GPUs by device request
  run_as       the container's user "uid:gid"
Logs are copied into the LogStore by docker_logs.LogFollower (see there) and outlive the container.
"""

from __future__ import annotations

import calendar
import contextlib
import logging
import os
import signal
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, ImageNotFound, NotFound
from docker.types import DeviceRequest

from atoll.runtime.base import (
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
from atoll.runtime.docker.accounts import add_account
from atoll.runtime.docker.container_spec import container_env, container_mounts
from atoll.runtime.docker.images import PROJECT_LABEL
from atoll.runtime.docker.logs import STREAMS, LogFollower
from atoll.runtime.docker.networks import NO_IPV6, ProjectBridges
from atoll.runtime.redaction import Redactor
from atoll.storage.logs import LogStore, check_id, system_line
from atoll.storage.safepath import Tree

log = logging.getLogger("atoll.runtime.docker.runtime")
DEFAULT_URL = "unix:///var/run/docker.sock"
LABEL = "atoll.workload"
_SECRETS_LABEL = "atoll.runtime.secret-env"  # names of the env vars whose values logs redact
_BASE_LABEL = "atoll.runtime.log-base"  # store sizes at create: an earlier workload's logs, not ours
_MIB = 1 << 20
_LOST_AFTER_S = 60.0  # a container created but never started this long ago: its start was cut off
_LIVE = ("running", "paused", "restarting")  # container states of a RUNNING workload
_DRAIN_S = 10.0  # how long status() waits for the output of a finished container to be stored


class ImageNotAvailable(ValueError):
    """The workload's image is not on the Docker daemon (and this runtime does not pull)."""


def _parse_time(value: str | None) -> float | None:
    """Docker's RFC 3339 times ("2026-11-24T03:58:00.123456789Z") as unix time; None for the zero time."""
    if not value or value.startswith("0001-"):
        return None
    date, _, frac = value.rstrip("Z").partition(".")
    secs = calendar.timegm(time.strptime(date, "%Y-%m-%dT%H:%M:%S"))
    return secs + (float("0." + frac) if frac else 0.0)


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


class DockerRuntime:
    """Runs Workloads as containers on one Docker daemon (see the module docstring)."""

    name = "docker"
    runs_images = True
    uses_project_netns = False  # a Docker network per project instead

    def __init__(
        self,
        log_store: LogStore,
        base_url: str = DEFAULT_URL,
        timeout: int = 60,
        gpus: str = "request",
        network_tag: str | None = None,
    ) -> None:
        """`base_url`: the daemon's API address, e.g. "unix:///var/run/docker.sock". `gpus`: "request"
        asks the daemon for a workload's GPU devices (the NVIDIA Container Toolkit); "env" only sets
        NVIDIA_VISIBLE_DEVICES and CUDA_VISIBLE_DEVICES (an nvidia default runtime does the rest).
        `network_tag`: the installation's tag; each project's containers then get a Docker network
        of their own (a workload's "project" label), else all share the daemon's default bridge."""
        if gpus not in ("request", "env"):
            raise ValueError(f"gpus must be 'request' or 'env' (got {gpus!r})")
        self.gpus_by_env = gpus == "env"
        self._ncpu: float | None = None
        self.log_store = log_store
        self.base_url = base_url
        self.client = docker.DockerClient(base_url=base_url, timeout=timeout)
        self._version = self.client.api.api_version
        self.networks = ProjectBridges(self.client, network_tag) if network_tag else None
        self._followers: dict[str, LogFollower] = {}
        self._stops: dict[str, str] = {}  # workload id -> the signal a stop asked for (this server)
        self._usage: dict[str, Usage] = {}  # last usage seen: a finished container has no stats
        self._done: set[str] = set()  # containers whose outcome is in the system log
        self._lock = threading.Lock()

    def address_of(self, w: Workload, node_address: str) -> str:
        return "127.0.0.1"  # ports are published on this machine's loopback

    def close(self) -> None:
        """Stop following logs and close the API client (at server shutdown); containers run on."""
        with self._lock:
            followers, self._followers = list(self._followers.values()), {}
        for f in followers:
            f.close()
        self.client.close()

    # --- helpers ---------------------------------------------------------------------------

    def _api(self) -> Any:
        return docker.APIClient(base_url=self.base_url, version=self._version)

    def _container(self, workload_id: str) -> Any:
        try:
            c = self.client.containers.get(f"atoll-{check_id(workload_id)}")
        except NotFound:
            raise UnknownWorkload(workload_id) from None
        if c.labels.get(LABEL) != workload_id:
            raise UnknownWorkload(workload_id)  # someone else's container with our name
        return c

    def _follow(self, workload_id: str, c: Any) -> LogFollower:
        """The container's log follower, started (or resumed where the store ends) if none runs."""
        with self._lock:
            f = self._followers.get(workload_id)
            if f is not None and (f.alive or f.complete) and f.container_id == c.id:
                return f
            env = dict(e.split("=", 1) for e in c.attrs["Config"].get("Env") or [] if "=" in e)
            names = [n for n in c.labels.get(_SECRETS_LABEL, "").split(",") if n]
            base = dict(p.split("=", 1) for p in c.labels.get(_BASE_LABEL, "").split(",") if "=" in p)
            skip = {s: max(0, self.log_store.size(workload_id, s) - int(base.get(s, 0))) for s in STREAMS}
            f = LogFollower(
                self._api, c.id, workload_id, self.log_store, [env.get(n, "") for n in names], skip
            )
            self._followers[workload_id] = f.start()
            return f

    def _finish_line(self, workload_id: str, c: Any, detail: str) -> None:
        """The outcome in the system log, once per container (also across server restarts)."""
        mark = f"(container {c.id[:12]} finished"
        with self._lock:
            if c.id in self._done:
                return
            data, _ = self.log_store.read(workload_id, "system", 0, 1 << 30)
            if mark.encode() not in data:
                self.append_system_log(
                    workload_id, f"{detail} {mark} at {c.attrs['State'].get('FinishedAt')})"
                )
            self._done.add(c.id)

    def _status_of(self, workload_id: str, c: Any) -> WorkloadStatus:
        s = c.attrs["State"]
        pid = s.get("Pid") or None
        started, finished = _parse_time(s.get("StartedAt")), _parse_time(s.get("FinishedAt"))
        status, short = s.get("Status"), c.id[:12]
        if status == "created":
            if s.get("Error"):
                return WorkloadStatus(
                    workload_id, WorkloadState.FAILED, detail=f"could not start: {s['Error']}"
                )
            created = _parse_time(c.attrs.get("Created")) or time.time()
            if time.time() - created > _LOST_AFTER_S:
                detail = "lost: its container was created but never started (the start was cut off)"
                return WorkloadStatus(workload_id, WorkloadState.LOST, detail=detail)
            return WorkloadStatus(workload_id, WorkloadState.STARTING, detail=f"container {short} created")
        if status in _LIVE:
            detail = f"running in container {short}"
            return WorkloadStatus(workload_id, WorkloadState.RUNNING, pid, started_at=started, detail=detail)
        raw: int | None = s.get("ExitCode")
        code, sig = raw, None
        # Docker's init (tini) exits with 128 + n when the command was killed by signal n.
        if raw is not None and 128 < raw < 128 + signal.NSIG:
            code, sig = None, raw - 128
        detail = f"killed by signal {sig} ({_signal_name(sig)})" if sig else f"exited with code {code}"
        if s.get("OOMKilled"):
            mb = (c.attrs["HostConfig"].get("Memory") or 0) // _MIB
            detail += f"; memory limit of {mb} MB exceeded (the kernel's OOM killer ended a process)"
        if s.get("Error"):
            detail += f"; {s['Error']}"
        if workload_id in self._stops:
            detail = f"stopped on request ({self._stops[workload_id]}): {detail}"
        state = WorkloadState.EXITED if code == 0 else WorkloadState.FAILED
        return WorkloadStatus(workload_id, state, pid, code, sig, started, finished, detail)

    def _daemon_cpus(self) -> float:
        """The daemon's CPU count: a quota over it is refused (an overcommitted pool may admit a
        configuration bigger than the machine; it then gets the whole machine)."""
        if self._ncpu is None:
            self._ncpu = float(self.client.info().get("NCPU") or 0) or float(os.cpu_count() or 1)
        return self._ncpu

    # --- the Runtime protocol ---------------------------------------------------------------

    def start(self, w: Workload) -> WorkloadStatus:
        """Create and start the workload's container; returns its status once started.

        Raises ValueError for a bad spec, ImageNotAvailable (a ValueError) when `w.image` is not on
        the daemon, WorkloadExists when a container of this id exists (forget() it first).
        """
        check_id(w.id)
        if not all(isinstance(a, str) for a in w.command):
            raise ValueError("workload command must be a list of strings")
        if not w.image:
            raise ValueError(f"workload {w.id!r}: the docker runtime needs an image (Workload.image)")
        with contextlib.suppress(NotFound):  # checked first, so a duplicate touches nothing
            self.client.containers.get(f"atoll-{w.id}")
            raise WorkloadExists(f"workload {w.id!r} is already known to the docker runtime")
        try:
            image = self.client.images.get(w.image)
        except ImageNotFound:
            raise ImageNotAvailable(
                f"image {w.image!r} is not on the Docker daemon at {self.base_url}: images must be "
                "built or loaded there first (docker build / docker load / docker import); "
                "Atoll does not pull from registries"
            ) from None
        owner = (image.labels or {}).get(PROJECT_LABEL)
        if owner and owner != w.labels.get("project"):
            # Another project's image, under whatever name or id: as if it were not there.
            raise ImageNotAvailable(f"image {w.image!r} is not on the Docker daemon at {self.base_url}")
        env = container_env(w, self.gpus_by_env)
        w.workdir.mkdir(parents=True, exist_ok=True)
        self.append_system_log(w.id, f"running in a container of image {w.image}")
        site = w.python.site_packages() if w.python is not None else None
        if site is not None:
            version = Path(site).parent.name.removeprefix("python")
            self.append_system_log(
                w.id, f"its Python packages are on PYTHONPATH: the image's python3 must be {version}"
            )
        mounts = container_mounts(w)
        if w.run_as is not None:
            with Tree(w.workdir) as tree:  # never through a link the workload planted
                tree.chown_all(*w.run_as)
        labels = {f"atoll.{k}": v for k, v in w.labels.items()}
        labels[LABEL] = w.id
        labels[_SECRETS_LABEL] = ",".join(sorted(w.secret_env))
        labels[_BASE_LABEL] = ",".join(f"{s}={self.log_store.size(w.id, s)}" for s in STREAMS)
        r = w.resources
        ids = [str(i) for i in w.gpu_ids]
        gpus = [DeviceRequest(device_ids=ids, capabilities=[["gpu"]])] if ids and not self.gpus_by_env else []
        network = None
        if self.networks is not None and w.labels.get("project"):
            network = self.networks.ensure(w.labels["project"])
        try:
            c: Any = self.client.containers.create(
                w.image,
                # No command: the image runs as built (its own CMD and WORKDIR).
                list(w.command) or None,
                name=f"atoll-{w.id}",
                environment=env,
                working_dir=str(w.workdir.resolve() / check_cwd(w.cwd)) if w.command else None,
                mounts=mounts,
                ports={
                    f"{inside}/tcp": ("127.0.0.1", host)
                    for host, inside in zip(w.ports, w.container_ports or w.ports, strict=False)
                },
                nano_cpus=int(min(r.cpus, self._daemon_cpus()) * 1e9),
                mem_limit=r.memory_mb * _MIB,
                memswap_limit=r.memory_mb * _MIB,
                pids_limit=r.max_pids,
                user=f"{w.run_as[0]}:{w.run_as[1]}" if w.run_as else None,
                device_requests=gpus,
                labels=labels,
                network=network,
                sysctls=NO_IPV6 if network else None,
                init=True,
                detach=True,
            )
        except APIError as e:
            if e.status_code == 409:
                raise WorkloadExists(f"workload {w.id!r} is already known to the docker runtime") from None
            raise
        cmd = " ".join(w.command).encode()
        shown = Redactor(list(w.secret_env.values())).redact(cmd).decode(errors="replace")
        limits = f"cpus {r.cpus:g}, memory {r.memory_mb} MB, pids {r.max_pids}" + (
            f", gpus {','.join(ids)}" if ids else ""
        )
        if w.run_as is not None and w.user_name:  # whoami, git and ssh know the project's user
            home = Path(env.get("HOME") or w.workdir)
            try:
                add_account(c, w.user_name, w.run_as[0], w.run_as[1], home)
            except (APIError, OSError, tarfile.TarError) as e:
                self.append_system_log(w.id, f"no passwd entry for the workload's user: {e}")
        try:
            c.start()
        except APIError as e:
            self.append_system_log(w.id, f"could not start container {c.id[:12]}: {e.explanation}")
            return self.status(w.id)
        c.reload()
        self.append_system_log(
            w.id,
            f"started container {c.id[:12]} from {w.image}, pid {c.attrs['State'].get('Pid')}: "
            f"{shown[:500]} (limits: {limits})",
        )
        self._follow(w.id, c)
        return self.status(w.id)

    def status(self, workload_id: str) -> WorkloadStatus:
        """The container's status; once it finished, only after its output is stored (and the outcome
        written to the system log). Raises UnknownWorkload."""
        c = self._container(workload_id)
        st = self._status_of(workload_id, c)
        if (
            st.state in (WorkloadState.EXITED, WorkloadState.FAILED)
            and c.attrs["State"].get("Status") != "created"
        ):
            if self._follow(workload_id, c).join(_DRAIN_S):
                self._finish_line(workload_id, c, st.detail)
            else:  # the next call resumes it
                log.warning("output of workload %s is not completely stored yet", workload_id)
        return st

    def stop(self, workload_id: str, sig: int = signal.SIGTERM, grace: float = 10.0) -> WorkloadStatus:
        """Send `sig` to the command's process group (through tini), wait up to `grace` seconds,
        then SIGKILL the container. Idempotent: a finished workload's status is returned unchanged."""
        c = self._container(workload_id)
        st = self._status_of(workload_id, c)
        if st.state.finished:
            return self.status(workload_id)
        name = _signal_name(sig)
        if workload_id not in self._stops:
            self._stops[workload_id] = name
            self.append_system_log(workload_id, f"stop requested: {name}, then SIGKILL after {grace:g} s")
        if st.state is WorkloadState.STARTING:
            sig, grace = signal.SIGKILL, 0.0  # nothing to signal gracefully yet
        deadline = time.monotonic() + grace
        with contextlib.suppress(APIError):
            c.kill(signal=int(sig))
        while time.monotonic() < deadline:
            c.reload()
            if c.attrs["State"].get("Status") not in _LIVE:
                break
            time.sleep(0.05)
        c.reload()
        if c.attrs["State"].get("Status") in (*_LIVE, "created"):
            with contextlib.suppress(APIError):
                c.kill(signal="SIGKILL")
            with contextlib.suppress(APIError):
                c.wait(timeout=10)
        return self.status(workload_id)

    def logs(
        self, workload_id: str, stream: str = "stdout", offset: int = 0, limit: int = 1 << 20
    ) -> LogChunk:
        """Read a stream from a byte offset; served from the LogStore, so also after forget()."""
        return read_log(self.log_store, self.status, workload_id, stream, offset, limit)

    def usage(self, workload_id: str) -> Usage:
        """CPU seconds and memory from the container's stats while it runs; after it ended, the last
        figures this server saw (the daemon keeps none)."""
        c = self._container(workload_id)
        if c.attrs["State"].get("Status") != "running":
            return self._usage.get(workload_id, Usage(0.0, 0, 0, 0))
        s = c.stats(stream=False, one_shot=True)
        mem = s.get("memory_stats") or {}
        # Like `docker stats`: resident memory without the reclaimable page cache.
        cache = (mem.get("stats") or {}).get("total_inactive_file", 0)
        now = max(0, int(mem.get("usage", 0)) - int(cache))
        prev = self._usage.get(workload_id)
        peak = max(int(mem.get("max_usage", 0)), now, prev.max_memory_bytes if prev else 0)
        cpu = float(((s.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage", 0)) / 1e9
        u = Usage(cpu, now, peak, int((s.get("pids_stats") or {}).get("current", 0)))
        self._usage[workload_id] = u
        return u

    def adopt(self) -> list[WorkloadStatus]:
        """Every container with the Atoll label: running ones are followed again (their logs resume
        where the store ends), finished ones have the rest of their output stored and their
        outcome reported."""
        found = []
        for c in self.client.containers.list(all=True, filters={"label": LABEL}):
            wid = c.labels.get(LABEL, "")
            with contextlib.suppress(UnknownWorkload, ValueError):
                if c.name == f"atoll-{wid}":
                    if c.attrs["State"].get("Status") in _LIVE:
                        self._follow(wid, c)
                    found.append(self.status(wid))
        return sorted(found, key=lambda st: st.id)

    def forget(self, workload_id: str) -> None:
        """Kill the container if it still runs and remove it; logs stay. A no-op for an unknown id."""
        try:
            c = self._container(workload_id)
        except UnknownWorkload:
            return
        if not self._status_of(workload_id, c).state.finished:
            self.stop(workload_id, signal.SIGKILL, grace=0)
        with contextlib.suppress(NotFound):
            c.remove(force=True)
        with self._lock:
            f = self._followers.pop(workload_id, None)
        if f is not None:
            f.close()
        self._stops.pop(workload_id, None)
        self._usage.pop(workload_id, None)

    def append_system_log(self, workload_id: str, line: str) -> None:
        """Add a timestamped line to the workload's "system" stream (kept like the other logs)."""
        self.log_store.append(workload_id, "system", system_line(line))
