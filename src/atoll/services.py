"""The long-lived parts of a running server: runtime, stores, environment builder, controllers.

Built once from Settings by `app.create_app`; the API reads logs and blobs through it and the
lifespan runs its controller loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

from atoll.capacity import Inventory
from atoll.controllers.base import Controller
from atoll.controllers.dataplane import DataPlaneController
from atoll.controllers.environments import EnvironmentController
from atoll.controllers.housekeeping import Housekeeping
from atoll.controllers.images import ImageController
from atoll.controllers.jobs import JobController
from atoll.controllers.models import ModelInbox
from atoll.controllers.nodes import NodeController
from atoll.controllers.notebooks import NotebookController
from atoll.controllers.workloads import WorkloadController
from atoll.dataplane.proxy import HAProxyPlane, haproxy_binary
from atoll.domain.secrets import SecretBox
from atoll.envs.build import EnvironmentBuilder
from atoll.notebooks.activity import ActivityBoard
from atoll.runtime.base import ClusterInventory
from atoll.runtime.docker.images import ImageBuilder
from atoll.runtime.docker.local_registry import LocalRegistry
from atoll.runtime.docker.runtime import DockerRuntime
from atoll.runtime.isolation import in_force
from atoll.runtime.local.netns import NetworkIsolation, ProjectNetworks
from atoll.runtime.local.relay import LoopbackRelay
from atoll.runtime.local.runtime import LocalRuntime
from atoll.runtime.registry import build_runtimes
from atoll.runtime.router import RuntimeRouter
from atoll.settings import Settings
from atoll.storage.blobs import BlobStore
from atoll.storage.layout import DataLayout
from atoll.storage.log_watch import ChangeBoard, LogWatch, job_key
from atoll.storage.logs import LogStore
from atoll.store.db import Database

log = logging.getLogger("atoll")


def _disk_gb(path: Path) -> float:
    """The size of the filesystem holding ``path``, in GB (working storage's default pool)."""
    st = os.statvfs(path)
    return st.f_blocks * st.f_frsize / 1024**3


def _protect(data: Path, separate_users: bool) -> None:
    """Owner-only for what holds Atoll's state; when workloads run as other users, they may pass
    through the data dir (0711, no listing) to reach their own job and project dirs only."""
    for name in ("logs", "blobs", "runtime"):
        (data / name).mkdir(exist_ok=True)
        (data / name).chmod(0o700)
    for name in ("jobs", "projects", "datasets"):
        (data / name).mkdir(exist_ok=True)
        (data / name).chmod(0o711 if separate_users else 0o700)
    data.chmod(0o711 if separate_users else 0o700)
    for f in data.glob("atoll.db*"):
        f.chmod(0o600)


class Services:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        box: SecretBox,
        inventory: Callable[[], Inventory],
        *,
        data_plane: bool = False,
    ) -> None:
        """``data_plane``: drive the gateway port's HAProxy (`atoll up` does; an app built in a
        process of its own, as the tests build it, serves the API alone, as it always did)."""
        data = settings.ensure_data_dir()
        self.settings = settings
        self.logs = LogStore(data / "logs")
        self.blobs = BlobStore(data / "blobs")
        self.envs = EnvironmentBuilder(settings.envs_dir or data / "envs")
        self.environments = EnvironmentController(db, self.envs, prebuild=settings.prebuild_environments)
        self.environments.register()  # the built-in ones are listed (and chosen) before any build
        runtimes = build_runtimes(settings, self.logs, data)
        local = runtimes.pop("local")
        assert isinstance(local, LocalRuntime)
        self.local_runtime = local  # always there: warm pools, limits, a forgotten workload's logs
        self.runtime = RuntimeRouter(local, *runtimes.values(), default=settings.runtime)
        if isinstance(self.runtime.default, ClusterInventory):  # workloads go to its machines
            inventory = self.runtime.default.inventory
        self.inventory = inventory
        uid_base = settings.workload_uid_base
        self.isolation = in_force(
            data, uid_base, settings.runtime, settings.network_isolation, settings.docker_host
        )
        for what, ok, detail in self.isolation.rows():
            if not ok:
                log.warning("isolation between projects, %s: %s", what, detail)
        if self.isolation.users:
            uid_base = 0
        self.separate_users = uid_base > 0
        self.networks: NetworkIsolation | None = None
        if not self.isolation.network:
            self.networks = NetworkIsolation(
                ProjectNetworks(data / "runtime", settings.network_cidr),
                LoopbackRelay([settings.port, settings.gateway_port]),
            )
        self.workloads = WorkloadController(
            db,
            self.runtime,
            box,
            inventory,
            settings.pool_overcommit,
            settings.controller_tick_s,
            storage_gb=settings.pool_storage_gb or _disk_gb(data),
            uid_base=uid_base,
            notify=lambda kind: self.wake(
                "notebooks" if kind.startswith("notebook") else "nodes" if kind == "node" else "jobs"
            ),
            layout=DataLayout(data),
            networks=self.networks,
        )
        # Log followers wait on this board rather than poll: the log watch bumps a workload's key
        # as its output lands, the job controller a job's key as its state moves.
        self.board = ChangeBoard()
        self.log_watch = LogWatch(self.logs.root, self.board, on_system=lambda _wid: self.wake("workloads"))
        self.jobs = JobController(
            db,
            self.blobs,
            self.logs,
            self.envs,
            data / "jobs",
            data / "projects",
            uid_base,
            notify=self.wake,
            changed=lambda job_id: self.board.notify(job_key(job_id)),
        )
        self.activity = ActivityBoard()
        self.notebooks = NotebookController(
            db,
            self.runtime,
            self.envs,
            box,
            self.jobs.project_home,
            data / "projects",
            self.activity,
            uid_base=uid_base,
            idle_cpu=settings.notebook_idle_cpu,
            time_scale=settings.notebook_time_scale,
            start_timeout_s=settings.notebook_start_timeout_s,
            check_s=settings.notebook_check_s,
            warm_pool=settings.notebook_warm_pool,
            notify=self.wake,
        )
        self.nodes = NodeController(
            db, self.blobs, self.envs, data, self.jobs.project_home, uid_base=uid_base, notify=self.wake
        )
        self.model_inbox = ModelInbox(db, self.blobs, data / "projects")
        self.housekeeping = Housekeeping(db, settings.audit_retention_days)
        # Projects' Docker images (spec §4.3): built on the Docker runtime's daemon, where there is one.
        self.images: ImageController | None = None
        docker_rt = self.runtime.images
        if isinstance(docker_rt, DockerRuntime):
            bridges = docker_rt.networks
            kept: LocalRegistry | None = None  # Atoll's own registry, where none is set
            if not settings.image_registry and settings.image_registry_port:
                kept = LocalRegistry(data / "registry", settings.image_registry_port)
            own = settings.image_registry or (kept.address if kept is not None else "")
            self.images = ImageController(
                db,
                ImageBuilder(settings.docker_host, own),
                box,
                registry=settings.image_registry,
                local_registry=kept,
                memory_mb=settings.image_build_memory_mb,
                timeout_s=settings.image_build_timeout_s,
                network_of=bridges.ensure if bridges is not None else None,
            )
            self.images.register()
        self.data_plane: DataPlaneController | None = None
        if data_plane and settings.gateway_port:
            binary = haproxy_binary(settings.haproxy_binary)
            plane = HAProxyPlane(
                data / "gateway", binary, settings.host, settings.gateway_port, settings.port
            )
            self.data_plane = DataPlaneController(db, plane, self.nodes.loads)
        _protect(data, separate_users=self.separate_users)
        self._tasks: list[asyncio.Task[None]] = []
        self._loop_ref: asyncio.AbstractEventLoop | None = None
        self._wakers: dict[str, asyncio.Event] = {}
        self._stopping = False

    def wake(self, name: str) -> None:
        """Run controller ``name`` (a ``Controller.name``: "workloads", "jobs", "notebooks",
        "nodes", "models", "dataplane") now rather than at its next tick; callable from any thread (API
        handlers, other controllers' worker threads)."""
        event, loop = self._wakers.get(name), self._loop_ref
        if event is not None and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(event.set)

    @property
    def controllers(self) -> list[Controller]:
        """Every reconcile loop the server runs, in start order (see controllers/base.py)."""
        plane = [self.data_plane] if self.data_plane is not None else []
        images = [self.images] if self.images is not None else []
        return [
            self.workloads,
            self.jobs,
            self.notebooks,
            self.nodes,
            self.model_inbox,
            self.environments,
            self.housekeeping,
            *images,
            *plane,
        ]

    async def start(self) -> None:
        self.log_watch.start()
        if not self.settings.controllers:
            return
        self._loop_ref = asyncio.get_running_loop()
        self._wakers = {c.name: asyncio.Event() for c in self.controllers}
        await asyncio.to_thread(self.workloads.reconcile_startup)
        for c in self.controllers:
            self._tasks.append(asyncio.create_task(self._loop(c), name=c.name))

    async def _loop(self, c: Controller) -> None:
        event, base = self._wakers[c.name], self.settings.controller_tick_s
        # The flag, not only cancellation, ends the loop: on Python 3.11 asyncio.wait_for could
        # swallow a cancel that arrived as the wake-up did, and stop() then waited forever.
        while not self._stopping:
            event.clear()  # a wake-up during the tick below is not lost: it sets it again
            try:
                await asyncio.to_thread(c.tick)
            except Exception:
                log.exception("%s controller tick failed", c.name)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(c.interval(base)):
                    await event.wait()

    async def stop(self) -> None:
        """Stop the loops; Workloads keep running and are re-adopted on the next start."""
        self._stopping = True
        await asyncio.to_thread(self.log_watch.close)
        for t in self._tasks:
            t.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)  # never raises; each task ends cancelled or by the flag
        self._tasks.clear()
        for c in self.controllers:
            await asyncio.to_thread(c.close)
        if self.networks is not None:
            self.networks.close()
        await asyncio.to_thread(self.runtime.close)
