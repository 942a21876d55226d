"""Node and alias metrics from HAProxy's request log (ATOLL_DATA_PLANE=haproxy).

HAProxy writes one line per request (``<alias>|<backend>|<status>|<ms>``, see haproxy.cfg.j2) to
a datagram socket in the gateway dir; this feed counts each into the same Recorder the Python
gateway uses, so the store's 10-second buckets (the node and alias pages' charts) and the
Prometheus exposition read the same. While `atoll up` is down nothing listens and lines are
dropped: serving goes on, only those requests go uncounted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import socket
import time
from pathlib import Path

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from atoll.dataplane.plan import METRICS_PATH as METRICS_PATH
from atoll.domain import access, auth
from atoll.gateway import metrics
from atoll.store.db import Database
from atoll.store.tables import Alias, Node

log = logging.getLogger("atoll.gateway")
NAMES_S = 2.0  # how often node names and alias ids are read again
MAX_LINE = 2048


class AccessLogFeed:
    def __init__(self, directory: Path, db: Database, recorder: metrics.Recorder) -> None:
        self.directory = directory
        self.db = db
        self.recorder = recorder
        self._nodes: dict[str, str] = {}  # node id -> name
        self._aliases: dict[str, str] = {}  # alias name -> id
        self._names_at = 0.0

    def _bind(self) -> socket.socket:
        # Through /proc/self/fd: the dir's path may be longer than a socket address allows.
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink("log.sock", dir_fd=fd)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            s.bind(f"/proc/self/fd/{fd}/log.sock")
        finally:
            os.close(fd)
        s.setblocking(False)
        return s

    def _names(self) -> None:
        if time.monotonic() - self._names_at < NAMES_S:
            return
        with self.db.session() as s:
            self._nodes = {nid: name for nid, name in s.execute(select(Node.id, Node.name))}
            self._aliases = {name: aid for name, aid in s.execute(select(Alias.name, Alias.id))}
        self._names_at = time.monotonic()

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
        self._names()
        rec = self.recorder.record
        if alias and alias != "-" and alias in self._aliases:
            aid = self._aliases[alias]
            rec("alias:" + aid, "alias", aid, alias, status, seconds)
        rec("node:" + node_id, "node", node_id, self._nodes.get(node_id, node_id), status, seconds)

    async def run(self) -> None:
        sock = self._bind()
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await loop.sock_recv(sock, MAX_LINE)
                try:
                    await asyncio.to_thread(self.count, data.decode(errors="replace"))
                except Exception:
                    log.exception("counting a data plane request failed")
        finally:
            sock.close()

    async def flush(self) -> None:
        """Write the current bucket to the store every FLUSH_S (the Python gateway's cadence)."""
        n = 0
        while True:
            await asyncio.sleep(2.0)
            at, window, _complete = self.recorder.take_window()
            n += 1
            try:
                await asyncio.to_thread(
                    metrics.flush, self.db, self.recorder.gateway_id, at, window, n % 300 == 0
                )
            except Exception:
                log.exception("writing data plane metrics failed")


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
        return Response(feed.recorder.exposition(), media_type="text/plain; version=0.0.4")

    return endpoint
