"""Node and alias metrics from HAProxy's counters and request log, and the gateway port's /metrics.

HAProxy counts each instance's responses by alias, node, status, gRPC status and latency bucket
itself (dataplane/counters.py); this feed reads the counters every second and adds what changed
into a Recorder (metrics.py), which feeds both the store's 10-second buckets (the node and alias
pages' charts) and the Prometheus exposition. HAProxy's own 503, 504 and 502 are logged instead,
a line each in a ring in its memory, which the feed follows through the runtime API.
While `atoll up` is down, or across a reload, what is served goes uncounted: serving goes on.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import socket
import threading
import time
from pathlib import Path

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from atoll.dataplane import counters
from atoll.dataplane.admin import Admin, AdminError
from atoll.dataplane.plan import METRICS_PATH as METRICS_PATH
from atoll.domain import access, auth
from atoll.gateway import metrics
from atoll.gateway.messages import METRICS_FORBIDDEN, METRICS_UNAUTHORIZED
from atoll.store.db import Database
from atoll.store.tables import Alias, Node

log = logging.getLogger("atoll.gateway")
NAMES_S = 2.0  # how often node names and alias ids are read again
NAMES_SOON_S = 0.2  # ... at most, when a line names one not known yet
FLUSH_S = 2.0  # how often the current bucket is written to the store
MAX_LINE = 2048
RING = "atoll_requests"  # the ring haproxy.cfg.j2 logs requests into
WORKER_CHECK_S = 1.0  # how often the feed looks for a new worker (after a reload)
COUNT_S = 1.0  # how often HAProxy's counters are read


def admin_status(db: Database, token: str) -> int:
    """200 for an installation admin's API token, 403 for another user's, 401 for a bad token."""
    with db.session() as s:
        try:
            user = auth.user_from_token(s, token)
        except auth.WrongScope:  # an external IDE link: one project's JupyterLab, nothing else
            return 401
        if user is None:
            return 401
        s.commit()  # the token's last-used stamp
        return 200 if access.can(s, access.load_principal(s, user), access.Action.SYSTEM_MANAGE) else 403


class AccessLogFeed:
    def __init__(self, directory: Path, db: Database, recorder: metrics.Recorder) -> None:
        self.directory = directory
        self.db = db
        self.recorder = recorder
        self._nodes: dict[str, str] = {}  # node id -> name
        self._aliases: dict[str, str] = {}  # alias name -> id
        self._names_at = 0.0
        self.lock = threading.Lock()  # the recorder is read by /metrics on the API's loop
        self.admin = Admin(directory)
        # The counters at the last reading, and the worker that held them (a new one, after a
        # reload, starts from zero). None: not read yet, the first reading is the baseline.
        self._counted: dict[str, int] | None = None
        self._counted_by: int | None = None

    def _follow(self, whole: bool) -> socket.socket | None:
        """A runtime-API connection that streams the ring's lines (None while HAProxy is not up).
        -n: only lines from now on; a new worker's ring is read whole (it began empty at the
        reload, so nothing in it was counted, and lines written before we got here count)."""
        try:
            return self.admin.send(f"show events {RING} -w{'' if whole else ' -n'}", timeout=0.5)
        except AdminError:  # not up yet, or the dir not made yet (the controller's first tick)
            return None

    def _names(self, soon: bool) -> None:
        """Node names and alias ids, read every NAMES_S, or after NAMES_SOON_S when ``soon`` (a
        line named a node or alias not known yet: a new one)."""
        age = time.monotonic() - self._names_at
        if age < (NAMES_SOON_S if soon else NAMES_S):
            return
        with self.db.session() as s:
            self._nodes = {nid: name for nid, name in s.execute(select(Node.id, Node.name))}
            self._aliases = {name: aid for name, aid in s.execute(select(Alias.name, Alias.id))}
        self._names_at = time.monotonic()

    def count(self, lines: list[bytes]) -> None:
        """Log lines of what went wrong (dataplane/counters.py): HAProxy's own answers to routed
        requests (503, 504, 502) count one response each; a line that carries the key the
        counters counted it under (after the space) is left out."""
        self._add_all(counters.tally(counters.uncounted(line.decode(errors="replace") for line in lines)))

    def read_counters(self) -> None:
        """What HAProxy counted since the last reading, into the recorder."""
        worker = self.admin.worker_pid()
        try:
            now = counters.parse_table(self.admin.ask(f"show table {counters.TABLE}"))
        except AdminError:
            return
        before = self._counted if worker == self._counted_by else {}
        first = self._counted is None
        self._counted, self._counted_by = now, worker
        if first or before is None:
            return  # the baseline: what was served before this `atoll up` is not ours to count
        self._add_all(counters.tally(counters.delta(now, before)))

    def _add_all(self, tallies: dict[tuple[str, str], counters.Counts]) -> None:
        """Each (alias, backend)'s counts to its alias and to its node."""
        if not tallies:
            return
        named = {(alias, _node_of(backend)) for alias, backend in tallies}
        self._names(soon=any(n not in self._nodes or (a and a not in self._aliases) for a, n in named))
        with self.lock:
            for (alias, backend), c in tallies.items():
                if alias in self._aliases:
                    aid = self._aliases[alias]
                    self.recorder.add("alias:" + aid, "alias", aid, alias, c)
                node_id = _node_of(backend)
                name = self._nodes.get(node_id, node_id)
                self.recorder.add("node:" + node_id, "node", node_id, name, c)

    def serve(self, stop: threading.Event) -> None:
        """Count lines as they come and write the store's bucket every FLUSH_S, until ``stop``.

        A thread of its own, not the event loop: the API's loop must not pay for proxied requests."""
        while not stop.is_set():
            try:
                self._serve(stop)
            except Exception:  # never let the metrics die with one surprise
                log.exception("the data plane's request feed failed; following again")
                stop.wait(1.0)

    def _serve(self, stop: threading.Event) -> None:
        sock: socket.socket | None = None
        pending = b""
        followed: int | None = None  # the worker whose ring is followed
        flushed, checked, read, n = time.monotonic(), time.monotonic(), 0.0, 0
        try:
            while not stop.is_set():
                if sock is not None and time.monotonic() - checked >= WORKER_CHECK_S:
                    # After a reload the old worker keeps this stream open (it finishes what it
                    # holds): follow the new one's ring instead, and let the old one go.
                    checked = time.monotonic()
                    if self.admin.worker_pid() != followed:
                        sock.close()
                        sock = None
                if sock is None:
                    before, followed = followed, self.admin.worker_pid()
                    whole = before is not None and followed != before  # a reload since we followed
                    sock, pending = (self._follow(whole), b"") if followed is not None else (None, b"")
                    if sock is None:
                        stop.wait(0.5)
                data = b""
                if sock is not None:
                    ended = False
                    try:
                        data = sock.recv(1 << 16)
                        ended = not data  # HAProxy reloaded or stopped
                    except TimeoutError:
                        pass  # nothing new: keep following
                    except OSError:
                        ended = True
                    if ended:
                        sock.close()
                        sock = None
                if data:
                    lines = (pending + data).split(b"\n")
                    pending = lines.pop()[-MAX_LINE:]
                    try:
                        self.count(lines)
                    except Exception:
                        log.exception("counting data plane requests failed")
                if time.monotonic() - read >= COUNT_S:
                    read = time.monotonic()
                    try:
                        self.read_counters()
                    except Exception:
                        log.exception("reading the data plane's counters failed")
                if time.monotonic() - flushed >= FLUSH_S:
                    flushed, n = time.monotonic(), n + 1
                    with self.lock:
                        at, window, _complete = self.recorder.take_window()
                    try:
                        metrics.flush(self.db, self.recorder.gateway_id, at, window, n % 300 == 0)
                    except Exception:
                        log.exception("writing data plane metrics failed")
        finally:
            if sock is not None:
                sock.close()


def _node_of(backend: str) -> str:
    """The node id in a backend's name (node_<id>, or node_<id>_grpc: a model node's gRPC face)."""
    return backend.removeprefix("node_").removesuffix("_grpc")


def metrics_endpoint(feed: AccessLogFeed, metrics_token: str):  # type: ignore[no-untyped-def]
    """The gateway's /metrics (HAProxy hands it to the API): for the metrics token or an
    installation admin's API token."""

    async def endpoint(request: Request) -> Response:
        token = access.bearer_token(request.headers.get("authorization")) or ""
        ok = bool(token and metrics_token) and hmac.compare_digest(token.encode(), metrics_token.encode())
        if not ok and token:
            status = await asyncio.to_thread(admin_status, feed.db, token)
            if status == 403:
                return JSONResponse({"error": METRICS_FORBIDDEN}, status_code=403)
            ok = status == 200
        if not ok:
            headers = {"www-authenticate": 'Bearer realm="atoll-metrics"'}
            return JSONResponse({"error": METRICS_UNAUTHORIZED}, status_code=401, headers=headers)
        with feed.lock:
            body = feed.recorder.exposition()
        return Response(body, media_type="text/plain; version=0.0.4")

    return endpoint
