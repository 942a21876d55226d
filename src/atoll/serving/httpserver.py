"""A small HTTP/1.1 server on asyncio + httptools, for the model server.

Model calls are CPU-bound and run inline (one core per instance is the design), so a request is
handled synchronously once its body is complete: no task per request, one socket write per
response, pipelining and keep-alive as HTTP/1.1 has them. `stop()` stops accepting, closes idle
connections and lets requests in flight finish.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import httptools

log = logging.getLogger("atoll.serving")

Headers = dict[bytes, bytes]
Reply = tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]  # status, body, content type, extra headers
Handler = Callable[[str, str, Headers, bytes], Reply]
MAX_HEAD = 64 * 1024  # request line + headers

REASONS = {
    100: b"Continue", 200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed",
    413: b"Payload Too Large", 415: b"Unsupported Media Type", 431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
}  # fmt: skip


def error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


class _Connection(asyncio.Protocol):
    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport: Any = None
        self.busy = False  # a request is partly received
        self.url = b""
        self.headers: Headers = {}
        self.chunks: list[bytes] = []
        self.size = 0
        self.head_size = 0
        self.too_large = False

    # asyncio.Protocol

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.server.check_drained()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(400, "protocol upgrades are not supported")
        except httptools.HttpParserError as e:
            self._refuse(400, f"malformed HTTP request: {e}")

    def pause_writing(self) -> None:
        self.transport.pause_reading()  # a slow reader: stop taking its requests

    def resume_writing(self) -> None:
        self.transport.resume_reading()

    # httptools callbacks

    def on_message_begin(self) -> None:
        self.busy = True
        self.url = b""
        self.headers = {}
        self.chunks = []
        self.size = 0
        self.head_size = 0
        self.too_large = False

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value
        self._count_head(len(name) + len(value))

    def _count_head(self, n: int) -> None:
        self.head_size += n
        if self.head_size > MAX_HEAD:
            self._refuse(431, f"the request line and headers are over {MAX_HEAD} bytes")

    def on_headers_complete(self) -> None:
        if self.transport.is_closing():
            return
        length = self.headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.server.max_body:
            self.too_large = True
        if self.headers.get(b"expect", b"").lower() == b"100-continue":
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, chunk: bytes) -> None:
        if self.too_large:
            return  # read and dropped, so that the client gets to read the 413
        self.size += len(chunk)
        if self.size > self.server.max_body:
            self.too_large, self.chunks = True, []
        else:
            self.chunks.append(chunk)

    def on_message_complete(self) -> None:
        if self.transport.is_closing():
            return
        keep_alive = self.parser.should_keep_alive() and not self.server.stopping
        if self.too_large:
            reply: Reply = (413, error_body(self.server.too_large_message()), b"application/json", [])
        else:
            body = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
            self.chunks = []
            reply = self._handle(body)
        self._write(reply, keep_alive)
        self.busy = False
        if not keep_alive:
            self.transport.close()

    # helpers

    def _handle(self, body: bytes) -> Reply:
        try:
            method = self.parser.get_method().decode("ascii", "replace")
            path = httptools.parse_url(self.url).path
            path_text = unquote(path.decode("latin-1")) if b"%" in path else path.decode("latin-1")
            return self.server.handler(method, path_text, self.headers, body)
        except httptools.HttpParserInvalidURLError:
            return 400, error_body(f"invalid URL {self.url[:200]!r}"), b"application/json", []
        except Exception as e:
            log.exception("unexpected error handling %r", self.url[:200])
            return 500, error_body(f"internal error: {type(e).__name__}: {e}"), b"application/json", []

    def _write(self, reply: Reply, keep_alive: bool) -> None:
        status, body, content_type, extra = reply
        head = [
            b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n"
            % (status, REASONS.get(status, b"Unknown"), content_type, len(body))
        ]
        for name, value in extra:
            head.append(b"%s: %s\r\n" % (name, value))
        if not keep_alive:
            head.append(b"connection: close\r\n")
        head.append(b"\r\n")
        head.append(body)
        self.transport.write(b"".join(head))

    def _refuse(self, status: int, message: str) -> None:
        if not self.transport.is_closing():
            self._write((status, error_body(message), b"application/json", []), keep_alive=False)
            self.transport.close()

    def close_if_idle(self) -> None:
        if not self.busy:
            self.transport.close()


class HttpServer:
    """Serves `handler(method, path, headers, body) -> (status, body, content_type, headers)`."""

    def __init__(self, handler: Handler, max_body: int) -> None:
        self.handler = handler
        self.max_body = max_body
        self.connections: set[_Connection] = set()
        self.stopping = False
        self._server: asyncio.Server | None = None
        self._drained: asyncio.Event | None = None

    def too_large_message(self) -> str:
        return f"the request body is over this server's limit of {self.max_body} bytes"

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen; returns the bound (host, port) (port 0 picks a free one)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), host, port, backlog=2048)
        bound = self._server.sockets[0].getsockname()
        return bound[0], bound[1]

    def check_drained(self) -> None:
        if self.stopping and not self.connections and self._drained is not None:
            self._drained.set()

    async def stop(self, timeout: float) -> None:
        """Stop accepting, close idle connections, wait up to `timeout` s for requests in flight."""
        self.stopping = True
        self._drained = asyncio.Event()
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.close_if_idle()
        self.check_drained()
        deadline = time.monotonic() + timeout
        try:
            await asyncio.wait_for(self._drained.wait(), max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError:  # noqa: UP041 - not yet the builtin one on Python 3.10
            log.warning("%d connections still busy after %g s; closing them", len(self.connections), timeout)
            for conn in list(self.connections):
                conn.transport.close()
