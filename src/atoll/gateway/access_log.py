"""Node and alias metrics from HAProxy's request log, and the gateway port's /metrics.

HAProxy writes one line per request (``<alias>|<backend>|<status>|<ms>``, see haproxy.cfg.j2)
into a ring in its memory; this feed follows the ring through the runtime API and counts each
line into a Recorder (metrics.py), which feeds both the store's 10-second buckets (the node and
alias pages' charts) and the Prometheus exposition. While `atoll up` is down,
or across a reload, lines are not read: serving goes on, only those requests go uncounted.
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


def admin_status(db: Database, token: str) -> int:
    """200 for an installation admin's API token, 403 for another user's, 401 for a bad token."""
    with db.session() as s:
        user = auth.user_from_token(s, token)
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
        """Requests' lines, ``<alias or ->|<backend>|<status>|<ms>`` (anything else is skipped:
        a line answered by the frontend itself, 404, 401 or /healthz, has no node backend)."""
        seen: list[tuple[str, str, int, float]] = []
        for line in lines:
            parts = line.decode(errors="replace").strip().split("|")
            if len(parts) != 4 or not parts[1].startswith("node_"):
                continue
            try:
                status, seconds = int(parts[2]), max(int(parts[3]), 0) / 1000
            except ValueError:
                continue
            alias = "" if parts[0] == "-" else parts[0]
            node_id = parts[1][len("node_") :].removesuffix("_grpc")  # a model node's gRPC face
            seen.append((alias, node_id, status, seconds))
        self._names(soon=any(n not in self._nodes or (a and a not in self._aliases) for a, n, _, _ in seen))
        with self.lock:
            rec = self.recorder.record
            for alias, node_id, status, seconds in seen:
                if alias in self._aliases:
                    aid = self._aliases[alias]
                    rec("alias:" + aid, "alias", aid, alias, status, seconds)
                rec("node:" + node_id, "node", node_id, self._nodes.get(node_id, node_id), status, seconds)

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
        flushed, checked, n = time.monotonic(), time.monotonic(), 0
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
