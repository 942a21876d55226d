"""The long-lived parts of a running server: runtime, stores, environment builder, controllers.

Built once from Settings by `app.create_app`; the API reads logs and blobs through it and the
lifespan runs its controller loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from atoll.controllers.jobs import JobController
from atoll.controllers.workloads import WorkloadController
from atoll.domain.secrets import SecretBox
from atoll.envs.build import EnvironmentBuilder
from atoll.runtime.inventory import Inventory
from atoll.runtime.local import LocalRuntime
from atoll.settings import Settings
from atoll.storage.blobs import BlobStore
from atoll.storage.logs import LogStore
from atoll.store.db import Database

log = logging.getLogger("atoll")


class Services:
    def __init__(
        self, settings: Settings, db: Database, box: SecretBox, inventory: Callable[[], Inventory]
    ) -> None:
        data = settings.ensure_data_dir()
        self.settings = settings
        self.logs = LogStore(data / "logs")
        self.blobs = BlobStore(data / "blobs")
        self.envs = EnvironmentBuilder(data / "envs")
        self.runtime = LocalRuntime(data / "runtime", self.logs)
        self.workloads = WorkloadController(
            db, self.runtime, box, inventory, settings.pool_overcommit, settings.controller_tick_s
        )
        self.jobs = JobController(db, self.blobs, self.logs, self.envs, data / "jobs", data / "projects")
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        if not self.settings.controllers:
            return
        self._tasks.append(asyncio.create_task(self.workloads.run(), name="workloads"))
        self._tasks.append(asyncio.create_task(self._jobs_loop(), name="jobs"))

    async def _jobs_loop(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.jobs.tick)
            except Exception:
                log.exception("job controller tick failed")
            await asyncio.sleep(self.settings.controller_tick_s)

    async def stop(self) -> None:
        """Stop the loops; Workloads keep running and are re-adopted on the next start."""
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks.clear()
