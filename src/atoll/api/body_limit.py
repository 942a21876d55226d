"""A bound on the size of every request body: 413 problem+json past it, before the app reads it.

A declared ``Content-Length`` over the bound is refused at once. A body without one (chunked) is
read up to the bound and then handed on, or refused as soon as it goes past it, so neither ever
holds more than the bound in memory. Some routes have their own bound (``None``: the endpoint
bounds what it stores as it streams, as blob uploads do; the notebook proxy is Jupyter's own).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from atoll.api.problems import problem

# (method, path pattern, bound in bytes or None for none here)
Rule = tuple[str, re.Pattern[str], int | None]


class BodyLimit:
    """Pure ASGI middleware; HTTP only (WebSocket messages are the notebook proxy's business)."""

    def __init__(self, app: ASGIApp, *, default: int, rules: Sequence[Rule] = ()) -> None:
        self.app = app
        self.default = default
        self.rules = tuple(rules)

    def limit_for(self, method: str, path: str) -> int | None:
        for m, pattern, limit in self.rules:
            if (m == "*" or m == method) and pattern.match(path):
                return limit
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["method"], scope["path"])
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared: int | None = None
        chunked = False
        for k, v in scope["headers"]:
            if k == b"content-length":
                try:
                    declared = int(v)
                except ValueError:
                    declared = None  # the HTTP server refuses a malformed length itself
            elif k == b"transfer-encoding":
                chunked = True
        if declared is not None and declared > limit:
            await self._too_large(scope, receive, send, limit)
            return
        if declared is not None or not chunked:
            # The server delivers no more than Content-Length; without either there is no body.
            await self.app(scope, receive, send)
            return
        buffered: list[Message] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                buffered.append(message)
                break
            size += len(message.get("body", b""))
            if size > limit:
                await self._too_large(scope, receive, send, limit)
                return
            buffered.append(message)
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return buffered.pop(0) if buffered else await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        detail = f"the request body is over this endpoint's limit of {_size(limit)}"
        response = problem(
            413,
            "Request too large",
            detail,
            instance=scope["path"],
            errors=[{"field": "body", "message": detail}],
        )
        response.headers["Connection"] = "close"  # the rest of the body is not read
        await response(scope, receive, send)


def _size(n: int) -> str:
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"
