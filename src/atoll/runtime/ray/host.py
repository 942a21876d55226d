"""The Ray side of the Ray runtime: one actor per Workload, holding its resources on one Ray node
and running it there with that node's local runtime.

So a workload on Ray is supervised exactly as on one machine (its own session and process group,
cgroup limits or rlimits, the per-project user, secret redaction, stop with signal and grace,
usage from /proc): the actor is a thin host around ``LocalRuntime``, whose state and logs live in
a directory of the node (``node_dir``). The control plane reads the logs from here and copies
them into its own log store (see ``atoll.runtime.ray.runtime``), so they outlive the node and the cluster.

The actor is detached, so it survives the server that created it. Either it is created for the
workload, named after it, and starts it in its constructor (a detached actor's creation belongs
to the cluster, not to the server, so a server that dies right after asking still gets its
workload started), or it is a warm host (``warm-…``, see warm_hosts.py) created ahead with no
workload, which a server gives one with ``run``. A server that dies within that call may leave
the workload unstarted: the restarted server then finds no host running it, and the workload is
lost (a job fails with that reason, a node instance is started again). Either way a restarted
server finds its workloads again: by name, or by asking warm hosts what they run (``hosting``).

Ray pickles this class by reference: every Ray node runs the same Atoll version as the server.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from atoll.runtime.base import LOG_STREAMS, UnknownWorkload, Workload, WorkloadStatus
from atoll.runtime.local.runtime import LocalRuntime
from atoll.storage.logs import LogStore

POLL_S = 0.02  # how often a long poll looks at the workload's files
MAX_WAIT_S = 30.0  # the longest a poll may wait for news


def _node_ip() -> str:
    import ray  # imported here: this module is also imported where Ray is not installed

    return str(ray.util.get_node_ip_address())


def _gpu_ids() -> tuple[int, ...]:
    import ray

    ids = ray.get_runtime_context().get_accelerator_ids().get("GPU", [])
    return tuple(int(i) for i in ids)


class WorkloadHost:
    """Runs one Workload on the node the actor was placed on (see the module docstring)."""

    def __init__(self, node_dir: str, w: Workload | None) -> None:
        """Start ``w`` here: HOST is this node's address (servers bind to it, the gateway connects to
        it) and the GPUs are the ones Ray assigned to this actor. Without ``w``, a warm host: ready
        (Ray worker up, Atoll imported) for the workload a later ``run`` gives it (see warm_hosts.py)."""
        root = Path(node_dir)
        self.runtime = LocalRuntime(root / "runtime", LogStore(root / "logs"))
        self.address = _node_ip()
        self.workload_id = ""
        self.started: WorkloadStatus | None = None
        self.started_with_it = w is not None
        if w is not None:
            self.run(w)

    def run(self, w: Workload) -> WorkloadStatus:
        """Start ``w`` on this host, once: a host runs one workload in its life."""
        if self.workload_id:
            raise RuntimeError(f"this host already runs {self.workload_id}")
        self.workload_id = w.id
        w = dataclasses.replace(
            w, env={**w.env, "HOST": self.address}, gpu_ids=_gpu_ids() or w.gpu_ids[:0], warm=None
        )
        self.started = self.runtime.start(w)
        how = "its own actor" if self.started_with_it else "a warm host (started ahead)"
        self.runtime.append_system_log(w.id, f"on Ray node {self.address}, {how}")
        return self.started

    def hosting(self) -> dict[str, str]:
        """The id of the workload this host runs ("" for a warm host not claimed yet) and the Ray
        node it is on."""
        import ray

        return {"workload": self.workload_id, "node": str(ray.get_runtime_context().get_node_id())}

    def start_status(self) -> WorkloadStatus:
        """What the start in the constructor gave (the call waits for the actor to exist)."""
        assert self.started is not None, "a warm host's start comes from run()"
        return self.started

    def poll(
        self, offsets: dict[str, int], limit: int = 1 << 20, wait: float = 0.0, state: str | None = None
    ) -> dict[str, Any]:
        """The status and what each log stream holds past ``offsets``; ``drained`` is True when the
        workload has finished and every byte of its logs has been returned.

        With ``wait`` > 0 this is a long poll: it answers as soon as a stream has grown past its
        offset or the state is no longer ``state`` (the caller's last known one), else after
        ``wait`` seconds (at most MAX_WAIT_S). The files are this node's own, so looking every
        POLL_S costs a few stats and keeps the copy's latency near POLL_S."""
        store = self.runtime.log_store
        deadline = time.monotonic() + min(max(wait, 0.0), MAX_WAIT_S)
        while True:
            st = self.runtime.status(self.workload_id)  # read before the data: see read_log
            if (
                st.state.finished
                or st.state.value != state
                or time.monotonic() >= deadline
                or any(store.size(self.workload_id, s) > offsets.get(s, 0) for s in LOG_STREAMS)
            ):
                break
            time.sleep(POLL_S)
        chunks: dict[str, bytes] = {}
        drained = st.state.finished
        for stream in LOG_STREAMS:
            start = offsets.get(stream, 0)
            data, nxt = store.read(self.workload_id, stream, start, limit)
            if data:
                chunks[stream] = data
            if nxt < store.size(self.workload_id, stream):
                drained = False
        return {"status": st, "chunks": chunks, "drained": drained}

    def stop(self, sig: int, grace: float) -> WorkloadStatus:
        return self.runtime.stop(self.workload_id, sig, grace)

    def usage(self) -> Any:
        return self.runtime.usage(self.workload_id)

    def forget(self) -> None:
        """Kill what still runs and drop the node's state and logs of it (the server has copied them)."""
        if not self.workload_id:
            return
        try:
            self.runtime.forget(self.workload_id)
        except UnknownWorkload:
            pass
        self.runtime.log_store.delete(self.workload_id)
