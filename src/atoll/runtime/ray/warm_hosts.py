"""Warm actor hosts of the Ray runtime: per node, ``WorkloadHost`` actors started ahead (their Ray
worker process up, Atoll imported, a LocalRuntime ready), so a workload starts with one method call
instead of waiting ~0.5 s for Ray to create an actor — what the local runtime's warm pool does for
JupyterLab, here for every workload.

- **Room.** An idle host asks Ray for nothing (0 CPUs). A workload that claims one reserves its
  configuration's CPUs and memory on that node with a placement group named after it, so Ray's
  view of what is used stays true (``ray status``, other schedulers of the cluster); a reservation
  is bookkeeping in Ray's control store, no process. The workload does not wait for Ray to grant
  it (Atoll's scheduler found the room already; Ray may take ~1 s after another group's removal):
  one not granted within RESERVE_WARN_S is reported in the log. The group goes when the workload
  is forgotten.
- **GPU workloads** still get an actor of their own: Ray hands GPU ids to actors, not to groups.
- **Names.** Hosts are named ``warm-<hex>`` (detached, in Atoll's namespace). Which workload a
  claimed one runs is the host's to say (``hosting()``), so a restarted server — or ``release`` —
  finds its workloads among them; idle ones it takes back into the pool.
- Every server keeps ``per_node`` idle hosts on each alive node (ATOLL_RAY_WARM_HOSTS, default 1),
  refilled by the runtime's pump; they are killed when the server stops.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from atoll.runtime.base import Workload

log = logging.getLogger("atoll.ray")

PREFIX = "warm-"
MIB = 1024 * 1024
RESERVE_WARN_S = 30.0  # a claim's placement group not granted by then: say so in the log


@dataclass
class Host:
    name: str
    handle: Any
    node: str  # Ray node id


class WarmHosts:
    """The idle warm hosts of one server, by node."""

    def __init__(self, ray: Any, actor: Any, namespace: str, node_dir: str, per_node: int) -> None:
        self.ray = ray
        self.actor = actor  # ray.remote(WorkloadHost)
        self.namespace = namespace
        self.node_dir = node_dir
        self.per_node = per_node
        self._idle: dict[str, list[Host]] = {}  # node id -> ready hosts
        self._loading: dict[Any, Host] = {}  # the ref of a host's first call -> the host
        self._known: set[str] = set()  # names of every host this server started or took back
        self._granting: dict[Any, tuple[str, float]] = {}  # a group's ready() -> workload, since
        self._lock = threading.Lock()

    def knows(self, name: str) -> bool:
        """Whether the host ``name`` is this server's (idle, starting, or claimed by a workload it
        tracks): a scan of the namespace need not ask it what it runs."""
        with self._lock:
            return name in self._known

    def keep(self, nodes: dict[str, str]) -> None:
        """Have ``per_node`` idle hosts (ready or starting) on each of ``nodes`` (id -> address);
        hosts of nodes that are gone are dropped. Called by the runtime's pump, often: cheap."""
        ray = self.ray
        self._check_grants()
        if self._loading:
            done, _ = ray.wait(list(self._loading), num_returns=len(self._loading), timeout=0)
            for ref in done:
                with self._lock:
                    host = self._loading.pop(ref)
                try:
                    ray.get(ref, timeout=0)
                except Exception as e:  # its node went away, or its worker could not start
                    log.warning("ray: a warm host on node %s failed to start: %s", host.node, e)
                    self._kill(host)
                    continue
                with self._lock:
                    self._idle.setdefault(host.node, []).append(host)
        with self._lock:
            for node in [n for n in self._idle if n not in nodes]:
                for host in self._idle.pop(node):
                    self._kill(host)
            counts = {n: len(self._idle.get(n, [])) for n in nodes}
            for host in self._loading.values():
                counts[host.node] = counts.get(host.node, 0) + 1
        for node, count in counts.items():
            for _ in range(self.per_node - count):
                self._start(node)

    def _check_grants(self) -> None:
        """Forget the reservations Ray has granted; warn of one it has not after RESERVE_WARN_S."""
        with self._lock:
            pending = dict(self._granting)
        if not pending:
            return
        done, _ = self.ray.wait(list(pending), num_returns=len(pending), timeout=0)
        now = time.monotonic()
        with self._lock:
            for ref in done:
                self._granting.pop(ref, None)
            for ref, (workload_id, since) in list(self._granting.items()):
                if now - since > RESERVE_WARN_S:
                    del self._granting[ref]
                    log.warning(
                        "ray: the room of %s is not granted after %.0f s: does another client of the "
                        "cluster use it? (the workload runs all the same)",
                        workload_id,
                        RESERVE_WARN_S,
                    )

    def _start(self, node: str) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        name = f"{PREFIX}{secrets.token_hex(8)}"
        handle = self.actor.options(
            name=name,
            namespace=self.namespace,
            lifetime="detached",
            max_restarts=0,
            max_concurrency=4,  # a poll or a log line while a stop waits out its grace
            num_cpus=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node, soft=False),
        ).remote(self.node_dir, None)
        with self._lock:
            self._loading[handle.hosting.remote()] = Host(name, handle, node)
            self._known.add(name)

    def adopt(self, name: str, handle: Any, node: str) -> None:
        """Take back an idle host found in the namespace."""
        with self._lock:
            if name in self._known:
                return
            self._known.add(name)
            self._idle.setdefault(node, []).append(Host(name, handle, node))

    def claim(self, w: Workload, node_address: str) -> tuple[Host, Any] | None:
        """An idle host on ``w``'s node with ``w``'s room reserved there: (the host, the placement
        group), or None (none idle, or a GPU workload: start it on an actor of its own)."""
        if not w.node or w.resources.gpus or self.per_node <= 0:
            return None
        with self._lock:
            idle = self._idle.get(w.node)
            host = idle.pop() if idle else None
        if host is None:
            return None
        bundle = {f"node:{node_address}": 0.001}  # on that node and no other
        if w.resources.cpus:
            bundle["CPU"] = float(w.resources.cpus)
        if w.resources.memory_mb:
            bundle["memory"] = float(w.resources.memory_mb * MIB)
        # Not waited for: Atoll's scheduler has already found the room, and Ray grants a group
        # asynchronously (up to ~1 s after another group's removal). keep() warns of one that
        # Ray does not grant (another client of the cluster took the room).
        pg = self.ray.util.placement_group([bundle], strategy="STRICT_PACK", name=w.id, lifetime="detached")
        with self._lock:
            self._granting[pg.ready()] = (w.id, time.monotonic())
        return host, pg

    def _kill(self, host: Host) -> None:
        with contextlib.suppress(Exception):
            self.ray.kill(host.handle, no_restart=True)

    def close(self) -> None:
        """Kill every idle or starting host (claimed ones run their workloads on)."""
        with self._lock:
            hosts = [h for idle in self._idle.values() for h in idle] + list(self._loading.values())
            self._idle.clear()
            self._loading.clear()
        for host in hosts:
            self._kill(host)


def release_room(ray: Any, workload_id: str) -> None:
    """Remove the placement group a claimed host's workload reserved, if there is one."""
    try:
        pg = ray.util.get_placement_group(workload_id)
    except ValueError:
        return  # none: it ran on an actor of its own
    with contextlib.suppress(Exception):
        ray.util.remove_placement_group(pg)
