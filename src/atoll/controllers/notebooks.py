"""The notebook controller: prepare, follow and release projects' JupyterLab servers.

Each tick: PREPARING servers get their environment, dirs and port and become a Workload (queued
for the scheduler, started by the workload controller); the rest follow their Workload's state.
READY servers are probed: a server whose kernels are idle, whose processes use no CPU and whose
users sent nothing for the project's ``vmInactivityTimeout`` is released (spec §3.3); a cell that
has run under 1% CPU for the ``staleExecTimeoutMode`` period is interrupted.

Probing talks HTTP to the servers, so each tick reads in one short transaction, probes outside
any transaction, and writes what it found in another: a slow server never holds the database.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from atoll.controllers.environments import EnvironmentChoice, content_key
from atoll.controllers.models import workload_env as model_env
from atoll.controllers.notebook_image import ActiveImage, ImageServer, image_server
from atoll.controllers.notebook_probe import Found, Probe, ServerProber
from atoll.controllers.notebook_runs import NotebookRuns
from atoll.domain import environments, images
from atoll.domain import notebooks as nbs
from atoll.domain.secrets import SecretBox
from atoll.domain.workloads import WorkloadSpec, run_identity, submit
from atoll.envs.build import Environment, EnvironmentBuilder, site_packages, usable_by_others
from atoll.envs.sdk import sdk_path
from atoll.errors import Invalid
from atoll.notebooks.activity import ActivityBoard
from atoll.notebooks.server import SECRET_ENV, WARM_MODULES, jupyter_command, notebook_environment, pick_port
from atoll.runtime.base import DEFAULT_PATH, Runtime, UnknownWorkload, WarmPools
from atoll.states import (
    NOTEBOOK_LIVE,
    NOTEBOOK_WAITING,
    WORKLOAD_FINISHED,
    Desired,
    NotebookState,
    WorkloadPhase,
)
from atoll.storage.layout import DataLayout
from atoll.storage.safepath import Tree
from atoll.store.db import Database
from atoll.store.tables import NotebookServer, Project, WorkloadRow, as_utc, utcnow

log = logging.getLogger("atoll.notebooks")
REFILL_SETTLE_S = 2.0  # after a server came up, before the warm pool is refilled


def _ts(dt: datetime | None) -> datetime | None:
    return as_utc(dt) if dt is not None else None


class NotebookController:
    def __init__(
        self,
        db: Database,
        runtime: Runtime,
        envs: EnvironmentBuilder,
        box: SecretBox,
        project_home: Callable[[str, tuple[int, int] | None], Path],
        projects_root: Path,
        activity: ActivityBoard,
        *,
        uid_base: int = 0,
        idle_cpu: float = 0.05,
        time_scale: float = 1.0,
        start_timeout_s: float = 120.0,
        check_s: float = 5.0,
        warm_pool: int = 0,
        notify: Callable[[str], None] = lambda _name: None,
    ) -> None:
        self.db = db
        self.runtime = runtime
        self.envs = envs
        self.box = box
        self.project_home = project_home
        self.projects_root = projects_root
        self.layout = DataLayout(projects_root.parent)
        self.activity = activity
        self.uid_base = uid_base
        self.idle_cpu = idle_cpu
        self.time_scale = time_scale
        self.start_timeout_s = start_timeout_s
        self.check_s = check_s
        self.warm_pool = warm_pool
        self._warm_key: str | None = None  # the runtime's template for the current base env
        self._warm_lock = threading.Lock()
        self._warm_closed = False
        # When the pool was last refilled (time.monotonic()): at most once a second, also while
        # the loop hurries at ten ticks a second.
        self._warm_looked = 0.0
        self._waited_at = -REFILL_SETTLE_S  # when a server was last seen on its way up
        self.notify = notify  # wakes another controller's loop ("workloads") without its tick
        self.hurry = False  # a server is on its way up: look again soon, not after a whole tick
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="atoll-notebooks")
        self._busy: set[str] = set()
        self._checked: dict[str, datetime] = {}
        self.prober = ServerProber(runtime, activity)
        self.runs = NotebookRuns(
            db, self.layout, uid_base, self._background, self._environment, self._stderr_tail, notify
        )

    # --- the loop -----------------------------------------------------------------------

    name = "notebooks"

    def interval(self, base: float) -> float:
        # While a notebook server comes up, the user waits: look every 0.1 s.
        return min(0.1, base) if self.hurry else base

    def tick(self, now: datetime | None = None) -> None:
        now = now or utcnow()
        probes: list[Probe] = []
        with self.db.transaction() as s:
            live = list(s.scalars(select(NotebookServer).where(NotebookServer.state.in_(NOTEBOOK_LIVE))))
            self.hurry = any(x.state in NOTEBOOK_WAITING for x in live)
            for server in live:
                if server.state == NotebookState.PREPARING:
                    self._background(server.id, self._prepare, self._server_failed)
                    continue
                probe = self._follow(s, server, now)
                if probe is not None:
                    probes.append(probe)
            self.runs.tick(s)
        if self.hurry:
            self._waited_at = time.monotonic()
        # Refilled once a second, but not while a server comes up nor for REFILL_SETTLE_S after:
        # loading a warm process takes a core for a second or more, which the server just started
        # (and its first kernel) would otherwise have to share.
        warm_due = (
            time.monotonic() - self._warm_looked >= 1.0
            and time.monotonic() - self._waited_at >= REFILL_SETTLE_S
        )
        if self.warm_pool and warm_due and isinstance(self.runtime, WarmPools):
            self._warm_looked = time.monotonic()
            self._background("warm-pool", self._keep_warm, lambda _k, _r: None)
        found = {p.server_id: self.prober.probe(p, now) for p in probes}
        if found:
            with self.db.transaction() as s:
                for p in probes:
                    self._apply(s, p, found[p.server_id], now)

    # --- preparing ----------------------------------------------------------------------

    def _background(self, key: str, prepare: Callable[[str], None], fail: Callable[[str, str], None]) -> None:
        """Run ``prepare(key)`` on the worker pool once at a time per key; ``fail(key, reason)`` if
        it raises (the row then says why instead of staying in its preparing state)."""
        if key in self._busy:
            return
        self._busy.add(key)

        def work() -> None:
            try:
                prepare(key)
            except Exception as e:
                log.exception("%s could not be prepared", key)
                fail(key, str(getattr(e, "detail", e)))
            finally:
                self._busy.discard(key)

        self._pool.submit(work)

    def _server_failed(self, server_id: str, reason: str) -> None:
        with self.db.transaction() as s:
            server = s.get(NotebookServer, server_id)
            if server is not None and server.state == NotebookState.PREPARING:
                nbs.finish(server, NotebookState.FAILED, f"could not prepare the server: {reason}")

    def _prepare(self, server_id: str) -> None:
        with self.db.transaction() as s:
            server = s.get(NotebookServer, server_id)
            if server is None or server.state != NotebookState.PREPARING:
                return
            project_id = server.project_id
            run_as = run_identity(s, project_id, self.uid_base)
            choice = self._choice(s, project_id)
            project = s.get(Project, project_id)
            active = images.active_image(s, project) if project is not None else None
            image = ActiveImage.of(active) if active is not None else None
            if image is not None and image.has_jupyterlab:
                choice = None  # its own JupyterLab serves: no environment of Atoll's is needed
            if (
                choice is not None
                and self.envs.lookup(content_key(choice.python_version, list(choice.resolved))) is None
            ):
                server.detail = (
                    f"waiting for the {choice.name} environment: it is built once per machine "
                    "(about a minute with a fast network)"
                )
        overlay: Environment | None = None
        layer: Environment | None = None
        if image is None:
            overlay, home, layer = self._environment(project_id, run_as)
        else:  # the image's python3 runs; Atoll's layer only where it has no JupyterLab
            layer = None if image.has_jupyterlab else self._base(project_id)
            home = self.project_home(project_id, run_as)
        state_dir = self.projects_root / project_id / "jupyter"
        port = pick_port()
        with self.db.transaction() as s:
            server = s.get(NotebookServer, server_id)
            if server is None or server.state != NotebookState.PREPARING:
                return
            project = s.get(Project, project_id)
            if project is None:
                return
            token = self.box.open(server.token)
            inside: ImageServer | None = None
            if image is not None:
                inside = image_server(image, layer, port, nbs.base_path(project_id), home, token, state_dir)
                argv, jenv = inside.argv, inside.env
            else:
                assert overlay is not None and layer is not None
                argv, jenv = jupyter_command(
                    overlay.python,
                    port,
                    nbs.base_path(project_id),
                    home,
                    token,
                    state_dir,
                    base_prefix=layer.path,
                )
            if run_as is not None:  # all of it: the config Atoll just wrote (as root) included
                with Tree(state_dir) as state:
                    state.chown_all(*run_as)
            sealed_token = self.box.seal(jenv.pop(SECRET_ENV)).decode()  # the server's secret, new per start
            # In an image, PATH is the image's (the runtime leaves it out).
            env = overlay.activate({"PATH": DEFAULT_PATH}) if overlay is not None else {}
            env.update(jenv)
            env["ATOLL_PROJECT_ID"] = project_id
            env["DS_PROJECT_HOME"] = str(home)
            if inside is None:  # atoll.models needs Atoll's files, which a container does not see
                env.update(
                    model_env(
                        self.projects_root, sdk_path(self.projects_root.parent), project_id, server_id, run_as
                    )
                )
            wl = submit(
                s,
                project,
                kind="notebook",
                owner_id=server.opened_by,
                configurations=[server.configuration],
                spec=WorkloadSpec(
                    command=argv,
                    workdir=home,
                    env=env,
                    mounts=inside.mounts if inside is not None else [],
                    ports=[port],
                    sealed_env={SECRET_ENV: sealed_token},
                    python=inside.python if inside is not None else None,
                    image=image.image_id if image is not None else None,
                    # A warm process has the default environment loaded: of use only to that one.
                    warm=self._warm_key
                    if inside is None and layer is not None and self._warm_key == _warm_name(layer)
                    else None,
                ),
                stop_signal=int(signal.SIGTERM),
                stop_grace_s=10.0,
            )
            server.workload_id = wl.id
            server.port = port
            server.state = NotebookState.QUEUED
            server.queued_at = utcnow()
            server.detail = "waiting for the scheduler"
        self.notify("workloads")

    # --- the warm pool ---------------------------------------------------------------------

    def _keep_warm(self, _key: str) -> None:
        """Keep ``warm_pool`` JupyterLab processes of the base environment loaded in the runtime
        (building the environment first if no server was ever opened here)."""
        base = notebook_environment(self.envs)
        key = _warm_name(base)
        with self._warm_lock:  # never park a process after close() stopped them all
            if self._warm_closed or not isinstance(self.runtime, WarmPools):
                return
            self.runtime.keep_warm(key, base.python, WARM_MODULES, self.warm_pool)
        self._warm_key = key

    def close(self) -> None:
        """At server shutdown: warm processes end with the server (running servers do not)."""
        with self._warm_lock:
            self._warm_closed = True
            if self.warm_pool and isinstance(self.runtime, WarmPools):
                self.runtime.close_warm()

    # --- notebooks run by API ------------------------------------------------------------

    def notebook_exists(self, project_id: str, path: str) -> bool:
        return self.runs.notebook_exists(project_id, path)

    @staticmethod
    def _choice(s: Session, project_id: str) -> EnvironmentChoice | None:
        """The environment the project chose (or the default built-in one), None before the
        environments controller registered the built-in ones."""
        project = s.get(Project, project_id)
        row = environments.of_project(s, project) if project is not None else None
        return EnvironmentChoice.of(row) if row is not None else None

    def _base(self, project_id: str) -> Environment:
        with self.db.transaction() as s:
            choice = self._choice(s, project_id)
        if choice is None:
            return notebook_environment(self.envs)
        if not choice.has_jupyter:
            raise Invalid(
                f"the project's environment {choice.name!r} has no JupyterLab: make it on top of a built-in "
                "one (atoll env create --base datascience), or choose another in the project's settings",
                field="settings.defaultEnvironment",
            )
        return choice.realize(self.envs)  # at once when built; else built (or waited for) now

    def _environment(
        self, project_id: str, run_as: tuple[int, int] | None
    ) -> tuple[Environment, Path, Environment]:
        """The project's notebook environment (a shared base + its own %pip layer), its storage,
        and the base."""
        base = self._base(project_id)
        if run_as is not None and not usable_by_others(site_packages(base.path)):
            raise RuntimeError(
                f"the notebook environment in {base.path} is not reachable by the project's user "
                f"(uid {run_as[0]}): a directory above it is private; put ATOLL_ENVS_DIR where other "
                "users may traverse (the default, DATA_DIR/envs, is)"
            )
        home = self.project_home(project_id, run_as)
        env_dir = self.projects_root / project_id / "notebook-env"
        overlay = self.envs.overlay(base, env_dir, run_as)
        if run_as is not None:
            _chown_tree(env_dir, run_as)
        return overlay, home, base

    # --- following the workload ---------------------------------------------------------

    def _follow(self, s: Session, server: NotebookServer, now: datetime) -> Probe | None:
        wl = s.get(WorkloadRow, server.workload_id) if server.workload_id else None
        if wl is None:
            nbs.finish(server, NotebookState.FAILED, "its workload is gone")
            return None
        if wl.state in WORKLOAD_FINISHED:
            self._closed(s, server, wl)
            return None
        if wl.state == WorkloadPhase.QUEUED:
            server.detail = wl.wait_reason or "waiting for the scheduler"
            return None
        if server.state == NotebookState.QUEUED:  # the scheduler admitted it: the process runs
            server.state = NotebookState.STARTING
            server.started_at = wl.started_at or now
            server.detail = f"starting JupyterLab on {wl.configuration}"
        if server.state == NotebookState.STOPPING or wl.desired == Desired.STOP:
            if server.state != NotebookState.STOPPING:
                server.state = NotebookState.STOPPING
                server.stopping_at = now
                server.detail = wl.stop_reason or server.detail
            return None
        if server.state == NotebookState.READY:
            last = self._checked.get(server.id)
            if last is not None and (now - last).total_seconds() < self.check_s:
                return None
            self._checked[server.id] = now
        project = s.get(Project, server.project_id)
        stale = nbs.STALE_EXEC_SECONDS.get(project.stale_exec_timeout_mode) if project else None
        return Probe(
            server_id=server.id,
            project_id=server.project_id,
            workload_id=wl.id,
            url=f"http://{wl.host}:{server.port}{nbs.base_path(server.project_id).rstrip('/')}",
            token=self.box.open(server.token),
            state=server.state,
            started_at=_ts(server.started_at),
            timeout_s=project.vm_inactivity_timeout_s if project else 3 * 3600,
            stale_s=stale * self.time_scale if stale else None,
        )

    def _closed(self, s: Session, server: NotebookServer, wl: WorkloadRow) -> None:
        self._forget(server.id)
        if wl.desired == Desired.STOP:
            nbs.finish(server, NotebookState.STOPPED, wl.stop_reason or server.detail or "stopped")
            return
        if wl.exit_code == 0:  # JupyterLab's File › Shut Down (or `jupyter server stop`): on purpose
            nbs.finish(server, NotebookState.STOPPED, "shut down from JupyterLab (File › Shut Down)")
            return
        detail = wl.stop_reason or f"JupyterLab exited (code {wl.exit_code})"
        tail = self._stderr_tail(wl.id)
        nbs.finish(server, NotebookState.FAILED, detail + (f": {tail}" if tail else ""))

    def _stderr_tail(self, workload_id: str) -> str:
        try:
            chunk = self.runtime.logs(workload_id, "stderr", 0, 1 << 20)
        except (UnknownWorkload, OSError):
            return ""
        lines = [ln for ln in chunk.data.decode(errors="replace").splitlines() if ln.strip()]
        return " | ".join(lines[-3:])[-600:]

    def _forget(self, server_id: str) -> None:
        self._checked.pop(server_id, None)
        self.prober.forget(server_id)

    def _apply(self, s: Session, p: Probe, f: Found, now: datetime) -> None:
        server = s.get(NotebookServer, p.server_id)
        if server is None or server.state != p.state:
            return  # moved on meanwhile (stopped by a user)
        if server.state == NotebookState.STARTING:
            if f.ready:
                server.state = NotebookState.READY
                server.ready_at = now
                server.last_activity_at = now
                server.last_activity = "opened"
                server.detail = "ready"
            elif p.started_at and (now - p.started_at).total_seconds() > self.start_timeout_s:
                nbs.ask_stop(s, server, f"JupyterLab did not answer within {self.start_timeout_s:.0f} s")
            return
        last = _ts(server.last_activity_at) or now
        what = server.last_activity
        candidates: list[tuple[datetime, str]] = []
        if f.busy_kernels:
            candidates.append((now, "a kernel is busy"))
        if f.cpu_rate is not None and f.cpu_rate >= self.idle_cpu:
            candidates.append((now, f"CPU load {f.cpu_rate:.2f} cores"))
        if f.activity is not None:
            candidates.append(f.activity)
        for at, label in candidates:
            if at > last:
                last, what = at, label
        server.last_activity_at = last
        server.last_activity = what[:64]
        if f.interrupted:
            mode = s.get(Project, p.project_id)
            self._system_log(
                p.workload_id,
                f"interrupted {f.interrupted} cell(s) that ran under 1% CPU for the project's "
                f"staleExecTimeoutMode ({mode.stale_exec_timeout_mode if mode else '?'})",
            )
        idle = (now - last).total_seconds()
        if idle >= p.timeout_s:
            span = timedelta(seconds=p.timeout_s)
            nbs.ask_stop(
                s,
                server,
                f"released after {span} without activity (no busy kernel, CPU load or user request); "
                "the project's vmInactivityTimeout",
            )

    def _system_log(self, workload_id: str, line: str) -> None:
        try:
            self.runtime.append_system_log(workload_id, line)
        except UnknownWorkload:
            pass


def _chown_tree(root: Path, run_as: tuple[int, int]) -> None:
    """Give a project's notebook dirs to the project's user (created by the server as root);
    through the safe-path module, since the project's user may have written there already."""
    with Tree(root) as tree:
        if os.fstat(tree.fd).st_uid != run_as[0]:
            tree.chown_all(*run_as)


def _warm_name(base: Environment) -> str:
    """The warm pool's template name for JupyterLab processes of this environment."""
    return f"jupyter-{base.key[:16]}"
