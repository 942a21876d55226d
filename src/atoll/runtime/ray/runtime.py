"""The Ray runtime: every Workload runs on a Ray cluster, as a named, detached actor that holds the
workload's resources on one node and runs it there with that node's local runtime
(``atoll.runtime.ray.host``). The server is a Ray driver (``ray.init(address=...)``).

- Placement: Atoll's scheduler picks the node (``Workload.node``, a Ray node id) from the
  cluster's resources (``inventory()``); the actor is pinned to it, and asks Ray for the
  configuration's CPUs, memory and GPUs there. The node's address is the workload's HOST.
- Logs: a pump thread copies each workload's log streams from its node into the server's log
  store, so logs are followed live and outlive the node and the cluster. It keeps one long poll
  open on every running workload's actor, which answers as soon as a line is written or the state
  changes (the node looks every 20 ms), so a line reaches the server within ~0.05 s. What was
  copied is recorded per workload (``<state_dir>/<id>.json``), so a restarted server goes on where
  it stopped. A workload shows as finished only once its logs are all copied; the server's own
  system log of it is then touched, which wakes the controllers (see storage/log_watch.py).
- Restart: actors are detached and named after their workload in Atoll's namespace; ``adopt()``
  finds them again.

Ray has no authentication: Atoll must be the cluster's only client (see docs/ray.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from atoll.capacity import Gpu, Host, Inventory
from atoll.runtime.base import (
    LogChunk,
    UnknownWorkload,
    Usage,
    Workload,
    WorkloadExists,
    WorkloadState,
    WorkloadStatus,
    read_log,
)
from atoll.runtime.local.proc_files import read_json, write_json
from atoll.runtime.ray.warm_hosts import PREFIX as WARM_PREFIX
from atoll.runtime.ray.warm_hosts import WarmHosts, release_room
from atoll.storage.logs import LogStore, check_id, system_line

log = logging.getLogger("atoll.ray")

MIB = 1024 * 1024
PUMP_INTERVAL_S = 0.5  # how stale a status may be before status() asks the actor itself
LONG_POLL_S = 5.0  # how long the pump's poll of a workload waits on its node for news
PUMP_WAIT_S = 0.05  # how often the pump looks for new workloads while it waits for answers
WARM_KEEP_S = 1.0  # how often the pump tops the warm hosts up
WARM_SETTLE_S = 2.0  # after a workload took a warm host, before a new one is started
CALL_TIMEOUT_S = 30.0
ACCELERATOR_PREFIX = "accelerator_type:"


class RayUnavailable(RuntimeError):
    """The Ray cluster cannot be reached (or Ray is not installed)."""


@dataclass
class _Tracked:
    """What the server knows of one workload on Ray."""

    handle: Any  # the actor
    status: WorkloadStatus
    start_ref: Any = None  # the pending start call, until it answers
    requested_at: float = field(default_factory=time.time)
    offsets: dict[str, int] = field(default_factory=dict)  # bytes of each stream copied so far
    final: bool = False  # finished and every log byte copied: status will not change again
    polled_at: float = 0.0
    waiting: bool = False  # the pump has a long poll open on it
    lock: threading.Lock = field(default_factory=threading.Lock)


def connect(address: str, namespace: str, node_ip: str | None = None) -> Any:
    """``ray.init`` as a driver of the cluster at ``address`` (idempotent); returns the ray module."""
    try:
        import ray
    except ImportError as e:  # pragma: no cover - depends on the install
        raise RayUnavailable("the ray runtime needs Ray: pip install 'atoll[ray]'") from e
    if not ray.is_initialized():
        # Ray keeps retrying an address that does not answer for minutes: look first.
        host, _, port = address.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
        except (OSError, ValueError) as e:
            raise RayUnavailable(f"cannot reach the Ray cluster at {address}: {e}") from e
        kwargs: dict[str, Any] = {}
        if node_ip:
            kwargs["_node_ip_address"] = node_ip
        try:
            ray.init(
                address=address,
                namespace=namespace,
                log_to_driver=False,
                logging_level=logging.WARNING,
                configure_logging=False,
                **kwargs,
            )
        except Exception as e:
            raise RayUnavailable(f"cannot reach the Ray cluster at {address}: {e}") from e
    return ray


def cluster_inventory(ray: Any) -> Inventory:
    """The cluster's alive nodes as hosts: CPUs, memory (Ray's ``memory`` resource) and GPUs, their
    type from an ``accelerator_type:<type>`` resource (Ray sets it on GPU nodes; declare it with
    ``ray start --resources`` where it does not)."""
    hosts = []
    for n in sorted(ray.nodes(), key=lambda n: n.get("NodeManagerAddress", "")):
        if not n.get("Alive"):
            continue
        res = n.get("Resources", {})
        types = [k[len(ACCELERATOR_PREFIX) :] for k in res if k.startswith(ACCELERATOR_PREFIX)]
        gpu_name = types[0] if types else "GPU"
        gpus = tuple(Gpu(i, gpu_name, 0) for i in range(int(res.get("GPU", 0))))
        hosts.append(
            Host(
                name=n["NodeID"],
                address=n["NodeManagerAddress"],
                cpus=float(res.get("CPU", 0)),
                memory_gb=round(float(res.get("memory", 0)) / 1024**3, 2),
                gpus=gpus,
            )
        )
    all_gpus = tuple(Gpu(i, g.name, 0) for i, g in enumerate(g for h in hosts for g in h.gpus))
    return Inventory(
        cpus=sum(h.cpus for h in hosts),
        memory_gb=round(sum(h.memory_gb for h in hosts), 2),
        gpus=all_gpus,
        gpu_source="ray",
        hosts=tuple(hosts),
        elastic=True,
    )


class RayRuntime:
    """Runs Workloads on a Ray cluster (see the module docstring)."""

    name = "ray"
    runs_images = False
    uses_project_netns = True

    def __init__(
        self,
        address: str,
        logs: LogStore,
        state_dir: Path,
        node_dir: str,
        namespace: str = "atoll",
        node_ip: str | None = None,
        start_timeout: float = 300.0,
        warm_hosts: int = 0,
    ) -> None:
        self.address = address
        self.namespace = namespace
        self.log_store = logs
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.node_dir = node_dir
        self.start_timeout = start_timeout
        self.ray = connect(address, namespace, node_ip)
        from atoll.runtime.ray.host import WorkloadHost

        self._actor = self.ray.remote(WorkloadHost)
        self._warm = WarmHosts(self.ray, self._actor, namespace, node_dir, warm_hosts)
        self._warm_kept_at = 0.0
        self._claimed_at = -WARM_SETTLE_S  # when a workload last took a warm host
        self._w: dict[str, _Tracked] = {}
        self._lock = threading.Lock()
        self._inventory: tuple[float, Inventory] | None = None
        self._closed = threading.Event()
        self._pump = threading.Thread(target=self._pump_loop, name="atoll-ray-logs", daemon=True)
        self._pump.start()

    # --- capacity --------------------------------------------------------------------------

    def inventory(self) -> Inventory:
        """The cluster's nodes (cached for 2 s: the scheduler asks on every admission)."""
        now = time.monotonic()
        if self._inventory is None or now - self._inventory[0] > 2.0:
            self._inventory = (now, cluster_inventory(self.ray))
        return self._inventory[1]

    # --- bookkeeping -----------------------------------------------------------------------

    def _state_file(self, workload_id: str) -> Path:
        return self.state_dir / f"{check_id(workload_id)}.json"

    def _get(self, workload_id: str) -> _Tracked:
        with self._lock:
            t = self._w.get(workload_id)
        if t is not None:
            return t
        # Not tracked by this process (yet): an actor of that name may still exist, or a warm host
        # may run it.
        try:
            handle = self.ray.get_actor(check_id(workload_id), namespace=self.namespace)
        except ValueError:
            self._scan_hosts()
            with self._lock:
                t = self._w.get(workload_id)
            if t is None:
                raise UnknownWorkload(workload_id) from None
            return t
        return self._track(workload_id, handle, WorkloadStatus(workload_id, WorkloadState.RUNNING))

    def _scan_hosts(self) -> list[str]:
        """Track the workloads that warm hosts of this namespace run (a restarted server's, or
        release's) and take idle hosts into the pool; the ids of the workloads found."""
        found = []
        for name in self.ray.util.list_named_actors():
            if not name.startswith(WARM_PREFIX) or self._warm.knows(name):
                continue
            try:
                handle = self.ray.get_actor(name, namespace=self.namespace)
                hosting = self.ray.get(handle.hosting.remote(), timeout=CALL_TIMEOUT_S)
            except Exception as e:  # gone meanwhile, or its node is unreachable: not ours to take now
                log.info("ray: warm host %s did not answer: %s", name, _first_line(e))
                continue
            workload_id = hosting["workload"]
            with self._lock:
                if workload_id in self._w:
                    continue
            if not workload_id:
                self._warm.adopt(name, handle, hosting["node"])
                continue
            self._track(workload_id, handle, WorkloadStatus(workload_id, WorkloadState.RUNNING))
            found.append(workload_id)
        return found

    def _track(
        self, workload_id: str, handle: Any, status: WorkloadStatus, start_ref: Any = None
    ) -> _Tracked:
        saved = read_json(self._state_file(workload_id)) or {}
        t = _Tracked(handle, status, start_ref, offsets=dict(saved.get("offsets", {})))
        if "requestedAt" in saved:
            t.requested_at = float(saved["requestedAt"])
        with self._lock:
            return self._w.setdefault(workload_id, t)

    def _save(self, workload_id: str, t: _Tracked) -> None:
        write_json(self._state_file(workload_id), {"offsets": t.offsets, "requestedAt": t.requested_at})

    # --- the protocol ----------------------------------------------------------------------

    def start(self, w: Workload) -> WorkloadStatus:
        check_id(w.id)
        with self._lock:
            known = w.id in self._w
        if known or self._actor_exists(w.id):
            raise WorkloadExists(w.id)
        claimed = self._warm.claim(w, self._address_of_node(w.node)) if w.node else None
        if claimed is not None:  # a warm host on that node, the room reserved (see warm_hosts.py)
            self._claimed_at = time.monotonic()
            handle = claimed[0].handle
            ref = handle.run.remote(replace(w, node=""))
            return self._started(w, handle, ref, "starting on a warm host")
        options: dict[str, Any] = {
            "name": w.id,
            "namespace": self.namespace,
            "lifetime": "detached",
            "max_restarts": 0,
            "max_concurrency": 4,  # a poll or a log line while a stop waits out its grace
            "num_cpus": w.resources.cpus,
            "memory": w.resources.memory_mb * MIB,
            "num_gpus": w.resources.gpus,
        }
        if w.node:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id=w.node, soft=False)
        handle = self._actor.options(**options).remote(self.node_dir, replace(w, node=""))
        return self._started(w, handle, handle.start_status.remote(), "waiting for Ray to place it")

    def _started(self, w: Workload, handle: Any, start_ref: Any, detail: str) -> WorkloadStatus:
        now = time.time()
        st = WorkloadStatus(w.id, WorkloadState.STARTING, started_at=now, detail=detail)
        t = self._track(w.id, handle, st, start_ref)
        t.requested_at = now
        self._save(w.id, t)
        return st

    def _address_of_node(self, node: str) -> str:
        for host in self.inventory().hosts:
            if host.name == node:
                return host.address
        return ""

    def _actor_exists(self, workload_id: str) -> bool:
        try:
            self.ray.get_actor(workload_id, namespace=self.namespace)
        except ValueError:
            return False
        return True

    def _refresh(self, workload_id: str, t: _Tracked) -> WorkloadStatus:
        """Ask the actor for the status and copy new log bytes (one caller at a time per workload)."""
        ray = self.ray
        with t.lock:
            if t.final:
                return t.status
            try:
                if t.start_ref is not None:
                    ready, _ = ray.wait([t.start_ref], timeout=0)
                    if not ready:
                        if time.time() - t.requested_at > self.start_timeout:
                            self._give_up(
                                workload_id, t, f"Ray did not place it within {self.start_timeout:g} s"
                            )
                        return t.status
                    try:
                        t.status = ray.get(t.start_ref)
                    except ray.exceptions.RayActorError as e:  # its constructor (the start) failed
                        log.warning("ray: workload %s could not start: %s", workload_id, e)
                        self._lose(
                            workload_id, t, f"could not start on Ray: {_first_line(e)}", WorkloadState.FAILED
                        )
                        return t.status
                    t.start_ref = None
                for _ in range(64):  # a finished workload's logs, to their end
                    res = ray.get(t.handle.poll.remote(t.offsets), timeout=CALL_TIMEOUT_S)
                    if self._take(workload_id, t, res):
                        break
            except Exception as e:
                self._failed(workload_id, t, e)
            t.polled_at = time.monotonic()
            return t.status

    def _take(self, workload_id: str, t: _Tracked, res: dict[str, Any]) -> bool:
        """Copy one poll's log bytes and take its status (under ``t.lock``). False while the
        workload has finished but its logs are not all read: poll again at once."""
        self._copy(workload_id, t, res["chunks"])
        st: WorkloadStatus = res["status"]
        if not st.state.finished:
            t.status = st
            return True
        if res["drained"]:
            t.status, t.final = st, True
            self._announce(workload_id)
            return True
        return False

    def _failed(self, workload_id: str, t: _Tracked, e: Exception) -> None:
        """What a failed call to a workload's actor means for it (under ``t.lock``)."""
        ray = self.ray
        if isinstance(e, ray.exceptions.GetTimeoutError | ray.exceptions.ActorUnavailableError):
            return  # the node is slow to answer, or being reached again: keep the last status
        if isinstance(e, ray.exceptions.RayActorError):
            self._lose(workload_id, t, f"its Ray actor or node is gone: {_first_line(e)}")
        elif isinstance(e, ray.exceptions.RayTaskError):
            log.warning("ray: workload %s failed on its actor: %s", workload_id, e)
            self._lose(workload_id, t, f"its Ray actor failed: {_first_line(e)}")
        else:
            raise e

    def _announce(self, workload_id: str) -> None:
        """Touch the workload's system log: the server's log watch takes it as "collect it now"
        (as the local supervisor does once it recorded an outcome)."""
        with contextlib.suppress(OSError):
            os.utime(self.log_store.path(workload_id, "system"))

    def _copy(self, workload_id: str, t: _Tracked, chunks: dict[str, bytes]) -> None:
        if not chunks:
            return
        for stream, data in chunks.items():
            self.log_store.append(workload_id, stream, data)
            t.offsets[stream] = t.offsets.get(stream, 0) + len(data)
        self._save(workload_id, t)

    def _lose(
        self, workload_id: str, t: _Tracked, detail: str, state: WorkloadState = WorkloadState.LOST
    ) -> None:
        t.status = WorkloadStatus(
            workload_id, state, started_at=t.status.started_at, finished_at=time.time(), detail=detail
        )
        t.final = True
        t.start_ref = None
        self.log_store.append(workload_id, "system", system_line(detail))  # wakes the controllers too

    def _give_up(self, workload_id: str, t: _Tracked, detail: str) -> None:
        with contextlib.suppress(Exception):
            self.ray.kill(t.handle, no_restart=True)
        self._lose(workload_id, t, detail, WorkloadState.FAILED)

    def _pump_loop(self) -> None:
        """Keep one long poll open on every running workload (see the module docstring) and take
        each answer as it comes; a workload still being placed is refreshed once Ray has it."""
        ray = self.ray
        open_polls: dict[Any, tuple[str, _Tracked, dict[str, int] | None]] = {}  # ref -> whose, offsets sent
        while not self._closed.is_set():
            self._keep_warm()
            with self._lock:
                items = list(self._w.items())
            for workload_id, t in items:
                if t.final or t.waiting:
                    continue
                t.waiting = True
                if t.start_ref is not None:
                    open_polls[t.start_ref] = (workload_id, t, None)
                else:
                    offsets = dict(t.offsets)
                    ref = t.handle.poll.remote(offsets, 1 << 20, LONG_POLL_S, t.status.state.value)
                    open_polls[ref] = (workload_id, t, offsets)
            self._overdue(open_polls)
            if not open_polls:
                self._closed.wait(PUMP_WAIT_S)
                continue
            try:
                ready, _ = ray.wait(list(open_polls), num_returns=1, timeout=PUMP_WAIT_S)
            except Exception:
                log.exception("ray: waiting for log polls failed")
                self._closed.wait(PUMP_INTERVAL_S)
                continue
            for ref in ready:
                workload_id, t, sent = open_polls.pop(ref)
                try:
                    self._answer(workload_id, t, ref, sent)
                except Exception:  # one workload's trouble must not stop everyone's logs
                    log.exception("ray: polling %s failed", workload_id)
                finally:
                    t.waiting = False

    def _overdue(self, open_polls: dict[Any, tuple[str, _Tracked, dict[str, int] | None]]) -> None:
        """Give up on the starts Ray has not placed within start_timeout (_refresh says why)."""
        now = time.time()
        for ref, (workload_id, t, sent) in list(open_polls.items()):
            if sent is None and now - t.requested_at > self.start_timeout:
                del open_polls[ref]
                t.waiting = False
                try:
                    self._refresh(workload_id, t)
                except Exception:
                    log.exception("ray: giving up on %s failed", workload_id)

    def _keep_warm(self) -> None:
        """Top the warm hosts up on every alive node, about once a second."""
        if self._warm.per_node <= 0 or time.monotonic() - self._warm_kept_at < WARM_KEEP_S:
            return
        if time.monotonic() - self._claimed_at < WARM_SETTLE_S:
            return  # a new host's worker would share the CPU with the workload just started
        self._warm_kept_at = time.monotonic()
        try:
            self._warm.keep({h.name: h.address for h in self.inventory().hosts})
        except Exception:  # the cluster is unreachable for now: the workloads' own calls say so
            log.exception("ray: keeping warm hosts failed")

    def _answer(self, workload_id: str, t: _Tracked, ref: Any, sent: dict[str, int] | None) -> None:
        """Take the answer to the pump's poll (or start) of one workload."""
        if sent is None:  # its start answered: take it the usual way
            self._refresh(workload_id, t)
            return
        with self._lock:
            if self._w.get(workload_id) is not t:
                return  # forgotten meanwhile
        with t.lock:
            if t.final:
                return
            try:
                res = self.ray.get(ref, timeout=CALL_TIMEOUT_S)
            except Exception as e:
                self._failed(workload_id, t, e)
                return
            if t.offsets != sent:
                return  # a status() call copied meanwhile: this answer's bytes are not the next ones
            self._take(workload_id, t, res)  # finished with more to copy: the next poll answers at once
            t.polled_at = time.monotonic()

    def status(self, workload_id: str) -> WorkloadStatus:
        t = self._get(workload_id)
        if t.final or t.waiting or time.monotonic() - t.polled_at < PUMP_INTERVAL_S:
            return t.status
        return self._refresh(workload_id, t)

    def stop(self, workload_id: str, sig: int = signal.SIGTERM, grace: float = 10.0) -> WorkloadStatus:
        t = self._get(workload_id)
        if t.start_ref is not None:
            ready, _ = self.ray.wait([t.start_ref], timeout=grace)
            if not ready:
                with t.lock:
                    self._give_up(workload_id, t, "stopped before Ray placed it")
                return t.status
        if not t.final:
            with contextlib.suppress(self.ray.exceptions.RayError):
                self.ray.get(t.handle.stop.remote(int(sig), float(grace)), timeout=grace + CALL_TIMEOUT_S)
        deadline = time.monotonic() + 10
        while True:
            st = self._refresh(workload_id, t)
            if t.final or time.monotonic() > deadline:
                return st
            time.sleep(0.05)

    def logs(
        self, workload_id: str, stream: str = "stdout", offset: int = 0, limit: int = 1 << 20
    ) -> LogChunk:
        return read_log(self.log_store, self.status, workload_id, stream, offset, limit)

    def usage(self, workload_id: str) -> Usage:
        t = self._get(workload_id)
        try:
            u: Usage = self.ray.get(t.handle.usage.remote(), timeout=CALL_TIMEOUT_S)
        except (self.ray.exceptions.RayError, UnknownWorkload):
            return Usage(0.0, 0, 0, 0)
        return u

    def adopt(self) -> list[WorkloadStatus]:
        found = []
        for workload_id in self._scan_hosts():
            with contextlib.suppress(UnknownWorkload):
                found.append(self.status(workload_id))
        for name in self.ray.util.list_named_actors():
            if name.startswith(WARM_PREFIX):
                continue
            try:
                found.append(self.status(name))
            except (UnknownWorkload, ValueError):  # gone meanwhile, or not a workload id
                continue
        return found

    def forget(self, workload_id: str) -> None:
        t = self._get(workload_id)
        for _ in range(3):  # the last log lines first
            if t.final:
                break
            self._refresh(workload_id, t)
        with t.lock:
            t.final = True  # what the pump may still hear of it is not copied any more
        with contextlib.suppress(self.ray.exceptions.RayError):
            self.ray.get(t.handle.forget.remote(), timeout=CALL_TIMEOUT_S)
        with contextlib.suppress(Exception):
            self.ray.kill(t.handle, no_restart=True)
        release_room(self.ray, workload_id)
        with self._lock:
            self._w.pop(workload_id, None)
        self._state_file(workload_id).unlink(missing_ok=True)

    def append_system_log(self, workload_id: str, line: str) -> None:
        """Atoll's own lines go to the server's log store directly (the copied node streams are
        kept apart by their offsets, so both writers interleave by time)."""
        self.log_store.append(check_id(workload_id), "system", system_line(line))

    def address_of(self, w: Workload, node_address: str) -> str:
        return w.address or node_address  # the node it was placed on

    def close(self) -> None:
        """Stop the log pump (the actors and their workloads go on; a restart adopts them)."""
        self._closed.set()
        self._pump.join(timeout=5)
        self._warm.close()


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _first_line(e: BaseException) -> str:
    text = _ANSI.sub("", str(e)).strip().splitlines()
    return text[0][:300] if text else type(e).__name__
