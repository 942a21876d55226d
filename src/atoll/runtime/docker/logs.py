"""Copying a container's output into the LogStore, for the Docker runtime.

The daemon keeps a container's stdout and stderr (its json-file log) only as long as the container
exists; Atoll keeps logs after the compute is gone. So a follower streams each of the two from the
Docker Engine API into the workload's LogStore files, secrets redacted with the local runtime's
Redactor: the stored logs read exactly like the local runtime's.

Resuming after a server restart needs no cursor: the daemon replays a container's log from its
start, and redaction is deterministic (a Redactor's output equals redacting the whole stream at
once), so the bytes already in the store are a prefix of what the replay produces. The follower
skips that many bytes and appends the rest: nothing is lost or doubled, even after `kill -9`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from atoll.runtime.redaction import Redactor
from atoll.storage.logs import LogStore

log = logging.getLogger("atoll.runtime.docker.runtime")
STREAMS = ("stdout", "stderr")


class LogFollower:
    """Follows one container's stdout and stderr (one thread each) until the container ends.

    `skip[stream]` bytes of redacted output are dropped first: what an earlier follower already
    stored. `complete` turns true once both streams reached their end (the container finished and
    everything it printed is stored); a follower cut off by close() or a daemon error is not
    complete, and a new one resumes where it left the store.
    """

    def __init__(
        self,
        api: Callable[[], Any],
        container_id: str,
        workload_id: str,
        log_store: LogStore,
        secrets: list[str],
        skip: dict[str, int],
    ) -> None:
        self._api = api  # a fresh low-level client per stream: each holds its connection for hours
        self.container_id = container_id
        self.workload_id = workload_id
        self.log_store = log_store
        self._secrets = secrets
        self._skip = dict(skip)
        self._closed = threading.Event()
        self._ended: dict[str, bool] = {}
        self._streams: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(s,), name=f"docker-logs-{workload_id}-{s}", daemon=True)
            for s in STREAMS
        ]

    def start(self) -> LogFollower:
        """Start both threads; returns self."""
        for t in self._threads:
            t.start()
        return self

    @property
    def alive(self) -> bool:
        """Whether a thread still copies output."""
        return any(t.is_alive() for t in self._threads)

    @property
    def complete(self) -> bool:
        """Both streams were copied to their end."""
        return all(self._ended.get(s, False) for s in STREAMS)

    def join(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for both threads; returns `complete`."""
        for t in self._threads:
            t.join(timeout)
        return self.complete

    def close(self) -> None:
        """Stop following (the server shuts down): cut the streams, do not flush held-back output."""
        self._closed.set()
        with self._lock:
            streams = list(self._streams.values())
        for s in streams:
            with contextlib.suppress(Exception):
                s.close()
        for t in self._threads:
            t.join(5.0)

    def _run(self, stream: str) -> None:
        client = None
        try:
            client = self._api()
            # Raw bytes, not decoded lines: a partial line or invalid UTF-8 is stored as printed.
            src = client.logs(
                self.container_id,
                stdout=stream == "stdout",
                stderr=stream == "stderr",
                stream=True,
                follow=True,
            )
            with self._lock:
                self._streams[stream] = src
            if self._closed.is_set():
                return
            redactor = Redactor(self._secrets)
            with self.log_store.open_append(self.workload_id, stream) as out:
                for chunk in src:
                    if self._closed.is_set():
                        return
                    self._write(out, stream, redactor.feed(chunk))
                if self._closed.is_set():
                    return  # cut by close(): the held-back tail is not the stream's end
                self._write(out, stream, redactor.flush())
            self._ended[stream] = True
        except Exception as e:  # a daemon restart, a removed container: a later follower resumes
            if not self._closed.is_set():
                log.warning("following %s of workload %s stopped: %s", stream, self.workload_id, e)
        finally:
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()

    def _write(self, out: Any, stream: str, data: bytes) -> None:
        skip = self._skip.get(stream, 0)
        if skip:
            n = min(skip, len(data))
            self._skip[stream] = skip - n
            data = data[n:]
        view = memoryview(data)
        while view:
            view = view[out.write(view) :]
