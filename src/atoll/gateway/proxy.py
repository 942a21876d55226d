"""An ASGI reverse proxy for HTTP and WebSocket, mounted under a prefix such as ``/nb/{project}``.

It forwards the request path *below* the mount point to ``Upstream.base_url``. What the client
sent to authenticate itself to Atoll (Cookie, Authorization) never goes upstream, and what the
upstream sets (Set-Cookie) never comes back: the upstream only sees the credentials ``resolve``
hands over (e.g. Jupyter's ``Authorization: token T``), so its secret never reaches the browser.

Bodies stream both ways (no buffering), HTTP goes through one pooled keep-alive client, and
WebSockets are bridged message by message with the ``websockets`` library.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

import httpx
from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol


@dataclass(frozen=True)
class Upstream:
    """Where a request goes: ``base_url`` (scheme, host, port and the path prefix that matches the
    mount point, e.g. ``http://127.0.0.1:8890/nb/p1``) and the only headers added for it."""

    base_url: str
    headers: dict[str, str] = field(default_factory=dict)
    # Called for each message the client sends over a WebSocket (e.g. to note a user's activity).
    on_client_message: Callable[[], None] | None = None
    # Query parameters the gateway consumed (a credential): never sent upstream.
    drop_query: tuple[str, ...] = ()


Resolver = Callable[[HTTPConnection], Awaitable["Upstream | Response"]]

# RFC 9110 §7.6.1 hop-by-hop headers, plus Host (the upstream's own is used) and content-length's
# cousin transfer-encoding: these describe one connection, not the message.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
# The client's credentials are for Atoll, not for the upstream; Origin/Referer name Atoll's
# public host, which the upstream (bound to loopback) would reject as cross-origin: the gateway
# is the one that checks them.
_REQUEST_DROP = _HOP_BY_HOP | {"host", "cookie", "authorization", "origin", "referer"}
# The upstream's cookies (Jupyter's login and _xsrf cookies) would carry its auth to the browser.
_RESPONSE_DROP = _HOP_BY_HOP | {"set-cookie"}
# Headers a WebSocket client library sets itself during the handshake.
_WS_HANDSHAKE = frozenset(
    {"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol"}
)

log = logging.getLogger("atoll.gateway")
_BAD_GATEWAY = "notebook server unreachable"


def _connection_tokens(headers: list[tuple[bytes, bytes]]) -> set[str]:
    """Header names listed in ``Connection:`` are hop-by-hop too (RFC 9110 §7.6.1)."""
    names: set[str] = set()
    for k, v in headers:
        if k.lower() == b"connection":
            names.update(t.strip().lower() for t in v.decode("latin-1").split(",") if t.strip())
    return names


def _filter(headers: list[tuple[bytes, bytes]], drop: frozenset[str]) -> list[tuple[bytes, bytes]]:
    extra = _connection_tokens(headers)
    return [(k, v) for k, v in headers if (n := k.decode("latin-1").lower()) not in drop and n not in extra]


def _route_path(scope: Scope) -> str:
    """The request path below the mount point, still percent-encoded as the client sent it.

    Encoded characters (``%2F`` in a file name) must survive, so the raw path is cut after as many
    segments as the (decoded) mount prefix has; the decoded path is re-quoted when there is none.
    """
    root = scope.get("root_path", "").rstrip("/")
    path: str = scope["path"]
    raw: bytes | None = scope.get("raw_path")
    if raw is not None:
        raw_path = raw.decode("latin-1").split("?", 1)[0]
        # The raw path holds the mount prefix whenever routing did (it is never rewritten).
        depth = root.count("/") if root and unquote(raw_path).startswith(root) else 0
        parts = raw_path.split("/")
        if len(parts) > depth:
            return "/" + "/".join(parts[depth + 1 :])
    if root and path.startswith(root):  # Starlette ≥ 0.33 keeps the full path in scope["path"]
        path = path[len(root) :]
    return quote(path or "/", safe="/:@!$&'()*+,;=-._~%")


def _target(upstream: Upstream, scope: Scope, *, websocket: bool = False) -> str:
    url = upstream.base_url.rstrip("/") + _route_path(scope)
    if query := scope.get("query_string", b""):
        text = query.decode("latin-1")
        if upstream.drop_query:
            kept = [p for p in text.split("&") if unquote(p.split("=", 1)[0]) not in upstream.drop_query]
            text = "&".join(kept)
        if text:
            url += "?" + text
    if websocket:
        url = "ws" + url[4:] if url.startswith("http") else url  # http→ws, https→wss
    return url


def _forwarded(scope: Scope) -> list[tuple[bytes, bytes]]:
    """X-Forwarded-For/Proto, so upstream logs name the real client; informational only."""
    out: list[tuple[bytes, bytes]] = []
    if client := scope.get("client"):
        out.append((b"x-forwarded-for", str(client[0]).encode("latin-1")))
    scheme = scope.get("scheme", "http")
    proto = {"ws": "http", "wss": "https"}.get(scheme, str(scheme))
    out.append((b"x-forwarded-proto", proto.encode("latin-1")))
    return out


def _close_code(code: int | None) -> int:
    """A close code that may be sent on the wire (1005/1006/1015 are reserved for reporting)."""
    if code is None or code in (1004, 1005, 1006, 1015) or not (1000 <= code <= 4999):
        return 1000 if code in (None, 1005) else 1011
    return code


class NotebookProxy:
    """ASGI app forwarding HTTP and WebSocket traffic to the upstream ``resolve`` picks.

    ``resolve`` gets the connection (path params, the user's session) and returns an ``Upstream``
    or a ``Response`` to send instead (404 for an unknown project, 403 for no access, 503 while a
    server starts). Call ``aclose()`` at shutdown to close the pooled connections.
    """

    def __init__(
        self,
        resolve: Resolver,
        *,
        timeout: httpx.Timeout | None = None,
        max_connections: int = 512,
    ) -> None:
        self.resolve = resolve
        # One pooled client for every upstream: keep-alive saves a TCP handshake per request.
        # trust_env=False: an HTTP(S)_PROXY meant for the internet must not capture loopback calls.
        self._client = httpx.AsyncClient(
            timeout=timeout or httpx.Timeout(connect=10.0, read=600.0, write=600.0, pool=30.0),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=64),
            follow_redirects=False,  # redirects are the browser's business (Location is upstream-relative)
            trust_env=False,
        )

    async def aclose(self) -> None:
        """Close pooled upstream connections."""
        await self._client.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        # lifespan and others: nothing to do for a sub-application

    # -- HTTP

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        upstream = await self.resolve(HTTPConnection(scope, receive))
        if isinstance(upstream, Response):
            await upstream(scope, receive, send)
            return
        in_headers: list[tuple[bytes, bytes]] = scope["headers"]
        headers = _filter(in_headers, _REQUEST_DROP) + _forwarded(scope)
        headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in upstream.headers.items()]
        has_body = any(k.lower() in (b"content-length", b"transfer-encoding") for k, _ in in_headers)
        request = self._client.build_request(
            scope["method"],
            _target(upstream, scope),
            headers=headers,
            # Stream the upload as it arrives; a body-less request stays body-less (no chunked GET).
            content=_request_body(receive) if has_body else None,
        )
        try:
            resp = await self._client.send(request, stream=True)
        except httpx.HTTPError as e:
            # Said in the server's log: a browser only sees that one asset of JupyterLab failed.
            log.warning("notebook gateway: %s %s failed upstream: %r", scope["method"], scope["path"], e)
            await PlainTextResponse(_BAD_GATEWAY, status_code=502)(scope, receive, send)
            return
        try:
            out = StreamingResponse(resp.aiter_raw(), status_code=resp.status_code)
            # Raw bytes pass through still encoded (gzip stays gzip), so Content-Length and
            # Content-Encoding stay true; repeated headers are kept as they came.
            out.raw_headers = _filter(resp.headers.raw, _RESPONSE_DROP)
            await out(scope, receive, send)
        finally:
            await resp.aclose()  # back to the pool, or dropped if the client went away mid-body

    # -- WebSocket

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        client_ws = WebSocket(scope, receive, send)
        upstream = await self.resolve(client_ws)
        if isinstance(upstream, Response):
            await _deny(client_ws, upstream)
            return
        headers = _filter(scope["headers"], _REQUEST_DROP | _WS_HANDSHAKE) + _forwarded(scope)
        headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in upstream.headers.items()]
        subprotocols = [Subprotocol(p) for p in scope.get("subprotocols", [])]
        try:
            server_ws = await connect(
                _target(upstream, scope, websocket=True),
                additional_headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers],
                subprotocols=subprotocols or None,
                max_size=None,  # the client side (uvicorn) already bounds message size
                compression=None,  # loopback: deflate would only cost CPU
                open_timeout=10,
                proxy=None,
            )
        except InvalidStatus as exc:  # the upstream refused the handshake: pass its status on
            status = exc.response.status_code
            await _deny(client_ws, PlainTextResponse(f"upstream refused: {status}", status_code=status))
            return
        except (OSError, InvalidHandshake, TimeoutError):
            await _deny(client_ws, PlainTextResponse(_BAD_GATEWAY, status_code=502))
            return
        async with server_ws:
            await client_ws.accept(subprotocol=server_ws.subprotocol)
            await _bridge(client_ws, server_ws, receive, upstream.on_client_message)


async def _request_body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return
        if body := message.get("body", b""):
            yield body
        if not message.get("more_body", False):
            return


async def _deny(client_ws: WebSocket, response: Response) -> None:
    """Refuse a WebSocket before accepting it: an HTTP response where the server supports that
    (uvicorn does), else a policy-violation close, which the server turns into 403."""
    if "websocket.http.response" in client_ws.scope.get("extensions", {}):
        await client_ws.send_denial_response(response)
    else:
        await client_ws.close(code=1008)


async def _bridge(
    client_ws: WebSocket,
    server_ws: ClientConnection,
    receive: Receive,
    on_client_message: Callable[[], None] | None = None,
) -> None:
    """Copy messages both ways until either side closes, then close the other with its code."""

    async def client_to_server() -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.receive":
                if on_client_message is not None:
                    on_client_message()
                if (text := message.get("text")) is not None:
                    await server_ws.send(text)
                elif (data := message.get("bytes")) is not None:
                    await server_ws.send(data)
            elif message["type"] == "websocket.disconnect":
                await server_ws.close(code=_close_code(message.get("code")))
                return

    async def server_to_client() -> None:
        try:
            async for data in server_ws:
                if isinstance(data, str):
                    await client_ws.send_text(data)
                else:
                    await client_ws.send_bytes(data)
            code, reason = server_ws.close_code, server_ws.close_reason or ""
        except ConnectionClosed as exc:
            code, reason = exc.rcvd.code if exc.rcvd else 1011, exc.rcvd.reason if exc.rcvd else ""
        # The upstream ended the session (kernel shut down, server stopped): tell the browser.
        with contextlib.suppress(Exception):  # the client may be gone already
            await client_ws.close(code=_close_code(code), reason=reason)

    tasks = [asyncio.create_task(client_to_server()), asyncio.create_task(server_to_client())]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            # A side going away mid-send is the normal end of a session, not an error to log.
            exc = task.exception()
            if exc is not None and not isinstance(exc, ConnectionClosed | OSError | WebSocketDisconnect):
                raise exc
    finally:
        for task in tasks:
            task.cancel()
