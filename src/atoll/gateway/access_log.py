"""Node and alias metrics from HAProxy's request log (ATOLL_DATA_PLANE=haproxy).

HAProxy writes one line per request (``<alias>|<backend>|<status>|<ms>``, see haproxy.cfg.j2)
into a ring in its memory; this feed follows the ring through the runtime API and counts each
line into the same Recorder the Python gateway uses, so the store's 10-second buckets (the node
and alias pages' charts) and the Prometheus exposition read the same. While `atoll up` is down,
or across a reload, lines are not read: serving goes on, only those requests go uncounted.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import socket
import threading
import time
from pathlib import Path

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from atoll.dataplane.admin import Admin
from atoll.dataplane.plan import METRICS_PATH as METRICS_PATH
from atoll.domain import access, auth
from atoll.gateway import metrics
from atoll.store.db import Database
from atoll.store.tables import Alias, Node

log = logging.getLogger("atoll.gateway")
NAMES_S = 2.0  # how often node names and alias ids are read again
NAMES_SOON_S = 0.2  # ... at most, when a line names one not known yet
FLUSH_S = 2.0  # how often the current bucket is written to the store
MAX_LINE = 2048
RING = "atoll_requests"  # the ring haproxy.cfg.j2 logs requests into
WORKER_CHECK_S = 1.0  # how often the feed looks for a new worker (after a reload)


class AccessLogFeed:
    def __init__(self, directory: Path, db: Database, recorder: metrics.Recorder) -> None:
        self.directory = directory
        self.db = db
        self.recorder = recorder
        self._nodes: dict[str, str] = {}  # node id -> name
        self._aliases: dict[str, str] = {}  # alias name -> id
        self._names_at = 0.0
        self.lock = threading.Lock()  # the recorder is read by /metrics on the API's loop

    def _follow(self, whole: bool) -> socket.socket | None:
        """A runtime-API connection that streams the ring's new lines (None while HAProxy is not
        up). A reload ends it (the old worker goes): the next call follows the new worker."""
        try:
            fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:  # not made yet: the data plane controller's first tick makes it
            return None
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(0.5)
            s.connect(f"/proc/self/fd/{fd}/admin.sock")  # the dir's path may be too long for one
            # -n: only lines from now on; a new worker's ring is read whole (it began empty at
            # the reload, so nothing in it was counted, and lines written before we got here count).
            s.sendall(f"show events {RING} -w{'' if whole else ' -n'}\n".encode())
        except OSError:
            s.close()
            return None
        finally:
            os.close(fd)
        return s

    def _names(self, lines: list[bytes] | None = None) -> None:
        """Node names and alias ids, read every NAMES_S, or sooner (not more than every
        NAMES_SOON_S) when a line names a node or alias not known yet: a new one."""
        age = time.monotonic() - self._names_at
        if age < NAMES_SOON_S or (age < NAMES_S and not self._unknown(lines or [])):
            return
        with self.db.session() as s:
            self._nodes = {nid: name for nid, name in s.execute(select(Node.id, Node.name))}
            self._aliases = {name: aid for name, aid in s.execute(select(Alias.name, Alias.id))}
        self._names_at = time.monotonic()

    def _unknown(self, lines: list[bytes]) -> bool:
        for line in lines:
            parts = line.decode(errors="replace").split("|")
            if len(parts) == 4 and parts[1].startswith("node_"):
                alias = parts[0].removeprefix("datasphere.user.")
                if parts[1][len("node_") :] not in self._nodes or (
                    alias not in ("", "-") and alias not in self._aliases
                ):
                    return True
        return False

    def count(self, line: str) -> None:
        """One request's line (anything malformed is skipped: the log is HAProxy's, not a tenant's)."""
        parts = line.strip().split("|")
        if len(parts) != 4 or not parts[1].startswith("node_"):
            return  # answered by the frontend itself (404, 401, /healthz): no node took it
        alias, node_id = parts[0].removeprefix("datasphere.user."), parts[1][len("node_") :]
        try:
            status, seconds = int(parts[2]), max(int(parts[3]), 0) / 1000
        except ValueError:
            return
        rec = self.recorder.record
        if alias and alias != "-" and alias in self._aliases:
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
        admin = Admin(self.directory)
        try:
            while not stop.is_set():
                if sock is not None and time.monotonic() - checked >= WORKER_CHECK_S:
                    # After a reload the old worker keeps this stream open (it finishes what it
                    # holds): follow the new one's ring instead, and let the old one go.
                    checked = time.monotonic()
                    if admin.worker_pid() != followed:
                        sock.close()
                        sock = None
                if sock is None:
                    before, followed = followed, admin.worker_pid()
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
                        self._names(lines)
                        with self.lock:
                            for line in lines:
                                self.count(line.decode(errors="replace"))
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


_UNAUTHORIZED = (
    "/metrics needs Authorization: Bearer <metrics token> (ATOLL_METRICS_TOKEN, else the file "
    "metrics-token in Atoll's data dir) or an installation admin's API token"
)


def metrics_endpoint(feed: AccessLogFeed, metrics_token: str):  # type: ignore[no-untyped-def]
    """The gateway's /metrics: for the metrics token or an installation admin's API token."""

    def admin(token: str) -> int:
        with feed.db.session() as s:
            user = auth.user_from_token(s, token)
            if user is None:
                return 401
            s.commit()  # the token's last-used stamp
            return 200 if access.can(s, access.load_principal(s, user), access.Action.SYSTEM_MANAGE) else 403

    async def endpoint(request: Request) -> Response:
        token = access.bearer_token(request.headers.get("authorization")) or ""
        ok = (
            bool(token)
            and bool(metrics_token)
            and hmac.compare_digest(token.encode(), metrics_token.encode())
        )
        if not ok and token:
            status = await asyncio.to_thread(admin, token)
            if status == 403:
                msg = "/metrics needs the metrics token or an installation admin's API token"
                return JSONResponse({"error": msg}, status_code=403)
            ok = status == 200
        if not ok:
            headers = {"www-authenticate": 'Bearer realm="atoll-metrics"'}
            return JSONResponse({"error": _UNAUTHORIZED}, status_code=401, headers=headers)
        with feed.lock:
            body = feed.recorder.exposition()
        return Response(body, media_type="text/plain; version=0.0.4")

    return endpoint
