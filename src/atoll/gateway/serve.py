"""The deploy gateway process (``python -m atoll.gateway``), which ``atoll up`` starts beside itself.

It runs apart from the control plane, so that API calls, page renders and controller ticks never
take the data path's CPU time or event loop. It reads its routing table from the store four
times a second, writes its metrics' 10-second buckets back every two seconds, and exits when
the ``atoll up`` that started it is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket

from atoll.domain import access, auth, tenancy
from atoll.errors import DomainError
from atoll.gateway import metrics, routing
from atoll.gateway.dataplane import ClientConnection, Gateway
from atoll.settings import Settings
from atoll.store.db import Database

log = logging.getLogger("atoll.gateway")
REFRESH_S = 0.25
FLUSH_S = 2.0


def _check(db: Database, token: str, project_id: str) -> int:
    """200 when the token's user has a role on the project, 403 when not, 401 for a bad token."""
    with db.session() as s:
        user = auth.user_from_token(s, token)
        if user is None:
            return 401
        s.commit()  # the token's last-used stamp
        try:
            tenancy.get_project(s, access.load_principal(s, user), project_id)
        except DomainError:
            return 403
        return 200


def admin_status(db: Database, token: str) -> int:
    """200 for an installation admin's API token, 403 for another user's, 401 for a bad token."""
    with db.session() as s:
        user = auth.user_from_token(s, token)
        if user is None:
            return 401
        s.commit()  # the token's last-used stamp
        return 200 if access.can(s, access.load_principal(s, user), access.Action.SYSTEM_MANAGE) else 403


async def _refresh(gw: Gateway, db: Database) -> None:
    while True:
        try:
            table = await asyncio.to_thread(routing.load, db)
            if table.signature != gw.table.signature:
                gw.table = table
        except Exception:
            log.exception("reading the routing table failed")
        await asyncio.sleep(REFRESH_S)


async def _flush(gw: Gateway, db: Database) -> None:
    n = 0
    while True:
        await asyncio.sleep(FLUSH_S)
        at, window, _complete = gw.recorder.take_window()
        n += 1
        try:
            await asyncio.to_thread(metrics.flush, db, gw.recorder.gateway_id, at, window, n % 300 == 0)
        except Exception:
            log.exception("writing gateway metrics failed")


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    while os.getppid() == parent:
        await asyncio.sleep(1.0)
    stop.set()


async def main(settings: Settings, sock: socket.socket | None = None) -> None:
    db = Database(settings.resolved_database_url)
    loop = asyncio.get_running_loop()

    async def check(token: str, project_id: str) -> int:
        return await asyncio.to_thread(_check, db, token, project_id)

    async def admin(token: str) -> int:
        return await asyncio.to_thread(admin_status, db, token)

    gw = Gateway(metrics.Recorder(secrets.token_hex(6)), check, settings.resolved_metrics_token, admin)
    gw.table = await asyncio.to_thread(routing.load, db)
    if sock is not None:
        server = await loop.create_server(lambda: ClientConnection(gw), sock=sock, backlog=1024)
    else:
        server = await loop.create_server(
            lambda: ClientConnection(gw),
            settings.host,
            settings.gateway_port,
            backlog=1024,
            reuse_port=True,
        )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = [
        asyncio.create_task(_refresh(gw, db)),
        asyncio.create_task(_flush(gw, db)),
        asyncio.create_task(_watch_parent(os.getppid(), stop)),
    ]
    log.info("gateway on %s:%s", settings.host, settings.gateway_port)
    await stop.wait()
    server.close()
    for t in tasks:
        t.cancel()
    at, window, _ = gw.recorder.take_window()
    with contextlib.suppress(Exception):
        await asyncio.to_thread(metrics.flush, db, gw.recorder.gateway_id, at, window, False)
    gw.pool.close()
    db.engine.dispose()


def run() -> None:
    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    asyncio.run(main(settings))
