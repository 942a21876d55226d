"""The environments controller: the built-in environments are built in the background at start.

A fresh installation should not make its first notebook (or job) wait for minutes of package
installs, nor build while the user watches: at its first tick the controller builds every
built-in environment that this machine does not have yet, one at a time, on a thread of its own.
A build that fails (no network to the package index) is tried again after ``RETRY_S``. Anyone who
needs an environment meanwhile calls its ``build`` too: the builder's per-key lock makes them wait
for this build instead of starting a second one.

``status()`` is what the API, the admin page and the notebook's timeline show.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from atoll.envs.build import EnvironmentBuilder, metadata
from atoll.envs.builtins import BUILTINS, BuiltinEnvironment
from atoll.states import EnvironmentStatus

log = logging.getLogger(__name__)
RETRY_S = 600.0


@dataclass
class BuildState:
    """Where one built-in environment stands on this machine."""

    status: EnvironmentStatus = EnvironmentStatus.PENDING
    detail: str = ""
    started: float | None = None  # time.time() of the current or last build
    finished: float | None = None
    build_seconds: float | None = None
    size_bytes: int | None = None
    packages: int | None = None


class EnvironmentController:
    """Builds the built-in environments once per machine (see the module docstring)."""

    name = "environments"

    def __init__(self, envs: EnvironmentBuilder, *, prebuild: bool = True) -> None:
        self.envs = envs
        self.prebuild = prebuild
        self._states = {name: BuildState() for name in BUILTINS}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def interval(self, base: float) -> float:
        return max(base, 5.0)

    def close(self) -> None:
        """Stop a build in flight (uv is killed, its temp dir removed): the next start builds
        again. Waits for the build's thread, so nothing of it outlives the server."""
        self.envs.cancel()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=30)

    def tick(self) -> None:
        with self._lock:
            for env in BUILTINS.values():
                self._refresh(env)
            if not self.prebuild or (self._thread is not None and self._thread.is_alive()):
                return
            due = [env for env in BUILTINS.values() if self._due(self._states[env.name])]
            if not due:
                return
            self._thread = threading.Thread(
                target=self._build_all, args=(due,), name="atoll-env-build", daemon=True
            )
            self._thread.start()

    def _due(self, state: BuildState) -> bool:
        if state.status == EnvironmentStatus.PENDING:
            return True
        return state.status == EnvironmentStatus.FAILED and time.time() - (state.finished or 0) >= RETRY_S

    def _refresh(self, env: BuiltinEnvironment) -> None:
        """Take note of an environment built meanwhile (by a notebook that could not wait)."""
        state = self._states[env.name]
        if state.status in (EnvironmentStatus.READY, EnvironmentStatus.BUILDING):
            return
        built = env.lookup(self.envs)
        if built is not None:
            self._ready(state, metadata(built))

    @staticmethod
    def _ready(state: BuildState, meta: dict[str, object]) -> None:
        state.status = EnvironmentStatus.READY
        state.detail = ""
        seconds, size, packages = meta.get("build_seconds"), meta.get("size_bytes"), meta.get("packages")
        state.build_seconds = float(seconds) if isinstance(seconds, int | float) else None
        state.size_bytes = int(size) if isinstance(size, int) else None
        state.packages = int(packages) if isinstance(packages, int) else None

    def _build_all(self, due: list[BuiltinEnvironment]) -> None:
        for env in due:
            state = self._states[env.name]
            with self._lock:
                state.status, state.started, state.finished = EnvironmentStatus.BUILDING, time.time(), None
                state.detail = f"installing {len(env.requirements())} locked packages with uv"
            log.info("building the built-in environment %r", env.name)
            try:
                built = env.build(self.envs)
            except Exception as e:  # the next try is RETRY_S away; the reason is shown meanwhile
                log.warning("the built-in environment %r could not be built: %s", env.name, e)
                with self._lock:
                    state.status, state.finished = EnvironmentStatus.FAILED, time.time()
                    state.detail = str(getattr(e, "detail", e))
                continue
            with self._lock:
                self._ready(state, metadata(built))
                state.finished = time.time()
            log.info("built-in environment %r ready", env.name)

    def status(self) -> list[dict[str, object]]:
        """Every built-in environment with its state on this machine, for the API and the pages."""
        with self._lock:
            for env in BUILTINS.values():
                self._refresh(env)
            return [
                {
                    "name": env.name,
                    "title": env.title,
                    "description": env.description,
                    "builtIn": True,
                    "status": str(self._states[env.name].status),
                    "detail": self._states[env.name].detail,
                    "packagesLocked": len(env.requirements()),
                    "packagesInstalled": self._states[env.name].packages,
                    "sizeBytes": self._states[env.name].size_bytes,
                    "buildSeconds": self._states[env.name].build_seconds,
                    "buildingSince": self._states[env.name].started
                    if self._states[env.name].status == EnvironmentStatus.BUILDING
                    else None,
                    "key": env.key(),
                }
                for env in BUILTINS.values()
            ]
