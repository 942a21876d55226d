"""Telling log followers the moment something changed, instead of making them poll.

``ChangeBoard`` is a set of named counters: any thread bumps a key ("a workload's log grew",
"a job's state changed") and coroutines waiting on that key wake. ``LogWatch`` bumps the log keys
from inotify events on the log store (through watchfiles): every runtime's output lands there,
whoever writes it (the local supervisor, the Docker log copier, the Ray log copier).

A follower reads the keys' versions *before* it reads the state, then waits "since" those
versions: a change between its read and its wait is never lost. Waits are also cut into short
slices, so a missed inotify event (a directory made just before its watch was added, an inotify
limit reached) costs at most one slice, not the whole wait.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

log = logging.getLogger("atoll.logwatch")

RECHECK_S = 2.0  # the longest a missed inotify event can delay a follower
BLIND_RECHECK_S = 0.5  # the same without the log watch (it failed to start): plain polling


def logs_key(workload_id: str) -> str:
    return f"logs:{workload_id}"


def job_key(job_id: str) -> str:
    return f"job:{job_id}"


class ChangeBoard:
    """Versioned keys that any thread can bump and event-loop coroutines can wait on.

    Versions come from one counter for all keys, so a number is never given twice: the table can
    drop its oldest keys (it keeps at most MAX_KEYS) without a follower ever missing a change. A
    dropped key reads as 0, which differs from what any follower saw, so at worst it looks again.
    """

    MAX_KEYS = 100_000

    def __init__(self) -> None:
        self.recheck_s = BLIND_RECHECK_S  # how long a follower waits before it looks anyway
        self._lock = threading.Lock()
        self._clock = itertools.count(1)
        self._versions: dict[str, int] = {}  # oldest bump first
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}

    def versions(self, keys: Iterable[str]) -> dict[str, int]:
        with self._lock:
            return {k: self._versions.get(k, 0) for k in keys}

    def notify(self, key: str) -> None:
        """Bump ``key``; callable from any thread."""
        with self._lock:
            self._versions.pop(key, None)
            self._versions[key] = next(self._clock)
            waiters = self._waiters.pop(key, set())
            while len(self._versions) > self.MAX_KEYS:
                del self._versions[next(iter(self._versions))]
        for fut in waiters:
            loop = fut.get_loop()
            if not loop.is_closed():
                loop.call_soon_threadsafe(_wake, fut)

    async def wait(self, since: dict[str, int], timeout: float) -> bool:
        """Wait until a key of ``since`` moves past its version there, or ``timeout`` seconds;
        True when something changed."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:
            if any(self._versions.get(k, 0) != v for k, v in since.items()):
                return True
            for k in since:
                self._waiters.setdefault(k, set()).add(fut)
        try:
            async with asyncio.timeout(timeout):
                await fut
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                for k in since:
                    waiting = self._waiters.get(k)
                    if waiting is not None:
                        waiting.discard(fut)
                        if not waiting:
                            del self._waiters[k]


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class LogWatch:
    """A thread that turns inotify events under a log store's root into ``board`` bumps.

    ``on_system`` hears of every write to a workload's system log: the local supervisor writes
    its last line there when the command ends (and touches it once the outcome is recorded), so
    the server can collect the outcome now rather than at its next poll.
    """

    def __init__(self, root: Path, board: ChangeBoard, on_system: Callable[[str], None]) -> None:
        self.root = root
        self.board = board
        self.on_system = on_system
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="atoll-log-watch", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        try:
            import watchfiles  # imported here: the CLI and the shim share this package
        except ImportError:  # pragma: no cover - a locked dependency; followers fall back to slices
            log.warning("watchfiles is missing: log followers see new output within %.1f s", BLIND_RECHECK_S)
            return
        self.board.recheck_s = RECHECK_S
        try:
            # step: yield 10 ms after a quiet moment; debounce: at most every 100 ms under a flood.
            for changes in watchfiles.watch(
                self.root,
                watch_filter=None,
                step=10,
                debounce=100,
                stop_event=self._stop,
                rust_timeout=500,
                raise_interrupt=False,
                ignore_permission_denied=True,
            ):
                self._tell(path for _change, path in changes)
        except Exception as e:  # e.g. the inotify watch limit: degrade to polling, say so once
            self.board.recheck_s = BLIND_RECHECK_S
            if not self._stop.is_set():
                log.warning(
                    "watching logs failed (%s): followers see new output within %.1f s", e, BLIND_RECHECK_S
                )

    def _tell(self, paths: Iterable[str]) -> None:
        seen: set[tuple[str, str]] = set()
        for raw in paths:
            try:
                rel = Path(raw).relative_to(self.root).parts
            except ValueError:
                continue
            if len(rel) != 2:
                continue
            workload_id, stream = rel[0], rel[1].removesuffix(".log")
            seen.add((workload_id, stream))
        for workload_id, stream in seen:
            self.board.notify(logs_key(workload_id))
            if stream == "system":
                self.on_system(workload_id)
