"""The middleware that writes the audit log's request records (domain/audit.py).

Every state-changing request to the API or the web UI leaves exactly one record, and so does each
request that a route marked (an SSO sign-in's return, a notebook opened). The record is written as
the response starts, before its body leaves: a client that reads the log after its call finds
the call there. Projects' JupyterLab traffic (/nb/…: saving a notebook, a kernel's messages) is the
notebook's own, not Atoll's, and is not recorded call by call.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from atoll.api import API_PREFIX
from atoll.domain import audit

log = logging.getLogger("atoll.audit")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
NOT_RECORDED = ("/static/", "/nb/", "/healthz", "/metrics")


class AuditLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/static/"):
            await self.app(scope, receive, send)  # nothing to note: no Note, no wrapped send
            return
        note, token = audit.begin()
        written = False

        async def write(status: int) -> None:
            nonlocal written
            if written:
                return
            written = True
            if _wanted(scope, note):
                await anyio.to_thread.run_sync(_write, scope, note, status)

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                await write(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            await write(500)
            raise
        finally:
            audit.end(token)


def _wanted(scope: Scope, note: audit.Note) -> bool:
    if note.record:
        return True
    path: str = scope["path"]
    # A request no route took (a made-up path, a body refused before routing) is nobody's action:
    # recording it would let anyone fill the log.
    routed = scope.get("route") is not None
    return routed and scope["method"] not in SAFE_METHODS and not path.startswith(NOT_RECORDED)


def _write(scope: Scope, note: audit.Note, status: int) -> None:
    route = scope.get("route")
    template = getattr(route, "path", "") or scope["path"]
    if scope["path"].startswith(API_PREFIX) and not template.startswith(API_PREFIX):
        template = API_PREFIX + template  # FastAPI hands the router's own route, without its prefix
    action = note.action or getattr(route, "name", "") or "request"
    rtype, rid = note.resource_type, note.resource_id
    if not rid:
        rtype, rid = _from_path(scope.get("path_params") or {})
    client = scope.get("client")
    try:
        with scope["app"].state.db.transaction() as s:
            audit.record(
                s,
                action=action,
                result=audit.result_of(status),
                status=status,
                organization_id=audit.organization_of(s, note),
                actor_id=note.actor_id,
                actor=note.actor,
                via=note.via,
                address=client[0] if client else "",
                route=f"{scope['method']} {template}",
                resource_type=rtype,
                resource_id=rid,
                detail=note.detail,
            )
    except Exception:  # the call itself is done; a lost record is logged, not turned into a 500
        log.exception("could not write the audit record of %s %s", scope["method"], template)


def _from_path(params: dict[str, Any]) -> tuple[str, str]:
    """The resource a path names, where no access check named one: its last ``…_id`` parameter
    (``token_id`` → token). Other parameters (an invite link's token) never reach the record."""
    for name, value in reversed(list(params.items())):
        if name.endswith("_id"):
            return name.removesuffix("_id"), str(value)[:64]
    return "", ""
