"""Asking a project's JupyterLab how it is (no transaction held): is it up, which kernels are
busy, how much CPU it used since the last look, when a person last used it; and interrupting
cells that have been busy without load for longer than the project allows (spec §3.3).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from atoll.notebooks.activity import ActivityBoard
from atoll.runtime.base import Runtime, UnknownWorkload
from atoll.states import NotebookState

log = logging.getLogger("atoll.notebooks")
STALE_CPU = 0.01  # spec §3.3: cells whose load stays under 1% count as stale


@dataclass
class Probe:
    """What a tick saw of a live server, to ask it without holding a transaction."""

    server_id: str
    project_id: str
    workload_id: str
    url: str  # the server's base URL, e.g. http://127.0.0.1:PORT/nb/<project>
    token: str
    state: str
    started_at: datetime | None
    timeout_s: int = 0
    stale_s: float | None = None


@dataclass
class Found:
    """What the server answered."""

    ready: bool = False
    busy_kernels: tuple[str, ...] = ()
    cpu_rate: float | None = None  # cores used since the previous sample
    activity: tuple[datetime, str] | None = None
    interrupted: int = 0


class ServerProber:
    """Probes servers over HTTP and keeps what it needs between looks (CPU samples, staleness)."""

    def __init__(self, runtime: Runtime, activity: ActivityBoard) -> None:
        self.runtime = runtime
        self.activity = activity
        self._cpu: dict[str, tuple[datetime, float]] = {}
        self._stale_since: dict[str, datetime] = {}
        self._http = httpx.Client(timeout=httpx.Timeout(2.0), trust_env=False)

    def forget(self, server_id: str) -> None:
        self._cpu.pop(server_id, None)
        self._stale_since.pop(server_id, None)

    def _get(self, p: Probe, path: str) -> Any:
        resp = self._http.get(p.url + path, headers={"Authorization": f"token {p.token}"})
        resp.raise_for_status()
        return resp.json()

    def probe(self, p: Probe, now: datetime) -> Found:
        found = Found()
        if p.state == NotebookState.STARTING:
            try:
                self._get(p, "/api/status")
                found.ready = True
            except (httpx.HTTPError, ValueError):
                pass
            return found
        try:
            kernels = self._get(p, "/api/kernels")
            found.busy_kernels = tuple(k["id"] for k in kernels if k.get("execution_state") == "busy")
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            log.debug("notebook server %s did not list its kernels", p.server_id)
        try:
            cpu = self.runtime.usage(p.workload_id).cpu_seconds
            prev = self._cpu.get(p.server_id)
            self._cpu[p.server_id] = (now, cpu)
            if prev is not None and (elapsed := (now - prev[0]).total_seconds()) > 0:
                found.cpu_rate = max(0.0, cpu - prev[1]) / elapsed
        except UnknownWorkload:
            pass
        found.activity = self.activity.last(p.project_id)
        if p.stale_s and found.busy_kernels and found.cpu_rate is not None and found.cpu_rate < STALE_CPU:
            since = self._stale_since.setdefault(p.server_id, now)
            if (now - since).total_seconds() >= p.stale_s:
                for kid in found.busy_kernels:
                    try:
                        self._http.post(
                            f"{p.url}/api/kernels/{kid}/interrupt",
                            headers={"Authorization": f"token {p.token}"},
                        ).raise_for_status()
                        found.interrupted += 1
                    except httpx.HTTPError:
                        log.warning("could not interrupt kernel %s of %s", kid, p.server_id)
                self._stale_since.pop(p.server_id, None)
        else:
            self._stale_since.pop(p.server_id, None)
        return found
