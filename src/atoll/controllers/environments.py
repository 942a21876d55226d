"""The environments controller: builds environments (built-in and projects' own) in the background.

At the server's start it registers the installation's built-in environments (envs/builtins.py)
as rows, and takes a build that a stopped server left BUILDING back to PENDING. Then, one at a time
on a thread of its own, it builds what is PENDING: uv into the shared, content-addressed cache,
where an environment already built (by content) is READY at once. A built-in one whose build
failed (no network to the package index) is tried again after ``RETRY_S``; a project's waits for
its Editor's `atoll env build`. Whoever needs an environment meanwhile (a notebook, a job) calls
``realize``: the builder's per-key lock makes it wait for this build instead of starting another.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from atoll.envs.build import BuildFailed, Environment, EnvironmentBuilder, environment_key, metadata
from atoll.envs.builtins import BUILTINS, DEFAULT, EXCLUDES
from atoll.envs.interpreter import current_version
from atoll.jobspec.requirements import canonical_name, requirement_name
from atoll.states import EnvironmentStatus
from atoll.store.db import Database
from atoll.store.tables import EnvironmentRow, as_utc, utcnow

log = logging.getLogger(__name__)
RETRY_S = 600.0
LAZY = "built when a project first chooses it (or an admin runs `atoll env build`)"
MAX_LOG = 256 * 1024


def _excludes(resolved: list[str]) -> list[str]:
    """Atoll's usual exclusions, less any the environment asks for by name."""
    named = {requirement_name(r) for r in resolved}
    return [e for e in EXCLUDES if canonical_name(e) not in named]


def content_key(python_version: str, resolved: list[str]) -> str:
    return environment_key(python_version, resolved, None, _excludes(resolved))


@dataclass(frozen=True)
class EnvironmentChoice:
    """What a workload is to run in, read from its row (workers build outside the session)."""

    name: str
    python_version: str
    resolved: tuple[str, ...]
    has_jupyter: bool

    @staticmethod
    def of(row: EnvironmentRow) -> EnvironmentChoice:
        names = {requirement_name(r) for r in row.resolved}
        return EnvironmentChoice(row.name, row.python_version, tuple(row.resolved), "jupyterlab" in names)

    def realize(self, envs: EnvironmentBuilder) -> Environment:
        return realize(envs, self.python_version, list(self.resolved))


def realize(envs: EnvironmentBuilder, python_version: str, resolved: list[str]) -> Environment:
    """The built environment for a row's content: at once when it is built, else built now (or
    waited for, when the controller is building it). Raises BuildFailed with uv's message."""
    return envs.build(python_version, resolved, excludes=_excludes(resolved))


def _summary(what: str, meta: dict[str, object], row: EnvironmentRow) -> str:
    """The log of a successful build: what happened, then what it holds."""
    head = f"{what}: {meta.get('packages')} packages on Python {row.python_version}\n"
    return head + "".join(f"{r}\n" for r in row.resolved)


class EnvironmentController:
    """Registers and builds environments (see the module docstring)."""

    name = "environments"

    def __init__(self, db: Database, envs: EnvironmentBuilder, *, prebuild: bool = True) -> None:
        self.db = db
        self.envs = envs
        self.prebuild = prebuild
        self._thread: threading.Thread | None = None
        self._wake: threading.Event | None = None

    def interval(self, base: float) -> float:
        return max(base, 2.0)

    def close(self) -> None:
        """Stop a build in flight (uv is killed, its temp dir removed; the row goes back to
        PENDING at the next start). Waits for the build's thread: nothing outlives the server."""
        self.envs.cancel()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=30)

    # --- the loop -----------------------------------------------------------------------

    def tick(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        row_id = self._next()
        if row_id is None:
            return
        self._thread = threading.Thread(
            target=self._build, args=(row_id,), name="atoll-env-build", daemon=True
        )
        self._thread.start()

    def register(self) -> None:
        """The built-in environments as rows (at the server's start, before the API serves): new
        ones PENDING, a changed lock file a new build; a build the last server left BUILDING is
        queued again."""
        python = current_version()
        with self.db.transaction() as s:
            rows = {
                r.name: r
                for r in s.scalars(select(EnvironmentRow).where(EnvironmentRow.project_id.is_(None)))
            }
            for env in BUILTINS.values():
                pins = env.requirements()
                row = rows.pop(env.name, None)
                if row is None:
                    row = EnvironmentRow(project_id=None, name=env.name, wanted=env.prebuild)
                    s.add(row)
                row.wanted = row.wanted or env.prebuild
                row.title, row.description, row.is_default = env.title, env.description, env is DEFAULT
                if row.resolved != pins or row.python_version != python:
                    row.python_version, row.requirements, row.resolved = python, pins, pins
                    row.status, row.key = EnvironmentStatus.PENDING, ""
                    row.detail = "" if row.wanted else LAZY
            for gone in rows.values():  # a built-in this version no longer ships
                s.delete(gone)
            for row in s.scalars(
                select(EnvironmentRow).where(EnvironmentRow.status == EnvironmentStatus.BUILDING)
            ):
                row.status, row.detail = (
                    EnvironmentStatus.PENDING,
                    "queued again: the server had stopped mid-build",
                )

    def _next(self) -> str | None:
        """The next environment to build, marking those already in the cache READY on the way."""
        retry_before = utcnow() - timedelta(seconds=RETRY_S)
        with self.db.transaction() as s:
            rows = list(
                s.scalars(
                    select(EnvironmentRow)
                    .where(EnvironmentRow.status.in_((EnvironmentStatus.PENDING, EnvironmentStatus.FAILED)))
                    .order_by(EnvironmentRow.project_id.is_not(None), EnvironmentRow.created_at)
                )
            )
            for row in rows:
                key = content_key(row.python_version, list(row.resolved))
                built = self.envs.lookup(key)
                if built is not None:  # the same content, built before (for this or another project)
                    meta = metadata(built)
                    self._ready(row, key, meta, _summary(f"already built ({key[:12]})", meta, row))
                    continue
                if not row.wanted:
                    continue  # a big built-in one nobody chose yet
                if row.status == EnvironmentStatus.FAILED:  # a built-in's, retried in a while
                    due = row.project_id is None and (
                        row.built_at is None or as_utc(row.built_at) < retry_before
                    )
                    if not (due and self.prebuild):
                        continue
                elif row.project_id is None and not self.prebuild:
                    continue  # the first notebook or job that needs it builds it
                row.status, row.started_at, row.key = EnvironmentStatus.BUILDING, utcnow(), key
                row.detail = f"installing {len(row.resolved)} packages with uv"
                return row.id
        return None

    @staticmethod
    def _ready(row: EnvironmentRow, key: str, meta: dict[str, object], log_text: str) -> None:
        row.status, row.detail, row.key = EnvironmentStatus.READY, "", key
        seconds, size, packages = meta.get("build_seconds"), meta.get("size_bytes"), meta.get("packages")
        row.build_seconds = float(seconds) if isinstance(seconds, int | float) else None
        row.size_bytes = int(size) if isinstance(size, int) else None
        row.packages = int(packages) if isinstance(packages, int) else None
        row.built_at = row.built_at or utcnow()
        if log_text:
            row.log = log_text[-MAX_LOG:]

    def _build(self, row_id: str) -> None:
        with self.db.transaction() as s:
            row = s.get(EnvironmentRow, row_id)
            if row is None:
                return
            python, resolved, name = row.python_version, list(row.resolved), row.name
        log.info("building environment %r (%d packages)", name, len(resolved))
        started = time.monotonic()
        try:
            built = realize(self.envs, python, resolved)
        except Exception as e:  # uv's message is the row's detail; its whole output the log
            detail = str(getattr(e, "detail", e))
            output = e.output if isinstance(e, BuildFailed) else ""
            log.warning("environment %r could not be built: %s", name, detail)
            with self.db.transaction() as s:
                row = s.get(EnvironmentRow, row_id)
                if row is not None:
                    row.status, row.detail, row.built_at = EnvironmentStatus.FAILED, detail[:1500], utcnow()
                    row.log = (output or detail)[-MAX_LOG:]
            return
        meta = metadata(built)
        with self.db.transaction() as s:
            row = s.get(EnvironmentRow, row_id)
            if row is not None:
                row.built_at = utcnow()
                summary = _summary(f"built with uv in {time.monotonic() - started:.1f} s", meta, row)
                self._ready(row, built.key, meta, summary)
        log.info("environment %r ready", name)
