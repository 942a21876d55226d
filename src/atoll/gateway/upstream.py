"""Connections from the gateway to node instances: one request at a time on each, answers read
whole with httptools, idle keep-alive connections pooled per instance."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httptools

from atoll.gateway.messages import Answer
from atoll.gateway.routing import Backend

MAX_BODY = 16 * 1024 * 1024
UPSTREAM_TIMEOUT_S = 60.0
MAX_IDLE_PER_BACKEND = 256


class UpstreamClosed(Exception):
    def __init__(self, answered: bool) -> None:
        super().__init__("the instance closed the connection")
        self.answered = answered  # some of a response had arrived: it cannot be retried


class _Upstream(asyncio.Protocol):
    """One keep-alive connection to an instance; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.done: Callable[[Answer | Exception], None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.parser: httptools.HttpResponseParser | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.size = 0
        self.answered = False
        self.status = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, data: bytes, done: Callable[[Answer | Exception], None]) -> None:
        """Send one request; ``done`` gets the answer (or why there is none) exactly once."""
        assert self.transport is not None
        self.done = done
        self.parser = httptools.HttpResponseParser(self)
        self.headers, self.body, self.size, self.answered = [], [], 0, False
        self.timer = asyncio.get_running_loop().call_later(UPSTREAM_TIMEOUT_S, self._timeout)
        self.transport.write(data)

    def request(self, data: bytes) -> asyncio.Future[Answer]:
        """``send`` as a future, for coroutines."""
        fut: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()

        def done(result: Answer | Exception) -> None:
            if fut.done():
                return
            if isinstance(result, Exception):
                fut.set_exception(result)
            else:
                fut.set_result(result)

        self.send(data, done)
        return fut

    def _timeout(self) -> None:
        self._fail(TimeoutError())
        self.close()

    def _finish(self, result: Answer | Exception) -> None:
        done, self.done = self.done, None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if done is not None:
            done(result)

    def data_received(self, data: bytes) -> None:
        if self.done is None or self.parser is None:
            self.close()  # nothing was asked: a confused upstream
            return
        self.answered = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as e:
            self._fail(RuntimeError(f"the instance sent an invalid response: {e}"))
            self.close()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        assert self.parser is not None
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > MAX_BODY:
            self._fail(OverflowError("the instance's response is over 16 MB"))
            self.close()
            return
        self.body.append(body)

    def on_message_complete(self) -> None:
        assert self.parser is not None
        self._finish((self.status, self.headers, b"".join(self.body), self.parser.should_keep_alive()))

    def _fail(self, exc: Exception) -> None:
        self._finish(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(UpstreamClosed(self.answered))

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Pool:
    """Idle keep-alive connections per instance."""

    def __init__(self) -> None:
        self.idle: dict[tuple[str, int], list[_Upstream]] = {}

    async def acquire(self, b: Backend) -> tuple[_Upstream, bool]:
        """A connection to ``b`` and whether it was reused (a reused one may have gone stale)."""
        idle = self.idle.get((b.host, b.port))
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn, True
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(_Upstream, b.host, b.port)
        return proto, False

    def idle_one(self, b: Backend) -> _Upstream | None:
        idle = self.idle.get((b.host, b.port))
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        return None

    def release(self, b: Backend, conn: _Upstream) -> None:
        idle = self.idle.setdefault((b.host, b.port), [])
        if len(idle) < MAX_IDLE_PER_BACKEND and not conn.closed:
            idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        for conns in self.idle.values():
            for c in conns:
                c.close()
        self.idle.clear()
