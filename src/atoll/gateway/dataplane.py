"""The deploy gateway's HTTP/1.1 proxy: aliases and nodes → their Healthy instances.

This is Atoll's hot path, so it is built on asyncio protocols and httptools (the parser under
uvicorn) rather than a framework: one parser callback per piece of a message, pooled keep-alive
connections to the instances, and no copy of a body beyond joining its chunks. Requests and
responses are read whole (both are capped at 16 MB, spec §6.1), which is what lets a request
that found its instance gone — refused, or closed before any byte of an answer — go to another
instance instead of failing. Bodies are re-framed with Content-Length.

Routing (spec §6.2, §6.3): ``x-node-alias: <alias>`` or the path ``/alias/<alias>/…`` (the path
below it goes upstream); ``x-node-id: <node>`` or ``/node/<node>/…`` for one node. A private
alias and every node need ``Authorization: Bearer <Atoll token>`` of a user with a role on the
project (that header then stays at the gateway). Anything else is the gateway's own:
``/metrics`` (Prometheus; the metrics token or an installation admin's API token) and ``/healthz``.

Tenant code never gets Atoll's own credentials, whatever the alias: the gateway shares a host
(and so, for browsers, the cookies) with Atoll's web UI, so Atoll's cookies (``atoll_*``) are cut
out of ``Cookie`` and an ``Authorization`` carrying an Atoll API token (``atl_…``) is dropped; an
instance's ``Set-Cookie`` for an ``atoll_*`` name never reaches the browser either (a service could
otherwise plant a session of its choosing in Atoll's UI). The tenant's own cookies and
credentials pass.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus

import httptools

from atoll.gateway.metrics import Recorder
from atoll.gateway.routing import EJECT_S, AliasRoute, Backend, NodeRoute, Table

log = logging.getLogger("atoll.gateway")
MAX_BODY = 16 * 1024 * 1024
UPSTREAM_TIMEOUT_S = 60.0
MAX_IDLE_PER_BACKEND = 256
_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
        b"host",
    }
)
_ROUTING = frozenset({b"x-node-alias", b"x-node-id"})
# Never forwarded: hop-by-hop, routing, and credentials meant for the gateway itself.
_DROP = _HOP | _ROUTING | {b"proxy-authorization"}
# Forwarded without Atoll's own credentials (see _tenant_only).
_CREDENTIALS = frozenset({b"authorization", b"cookie"})
ATOLL_TOKEN_PREFIX = b"atl_"  # an Atoll API token (domain.auth.TOKEN_PREFIX)
# Cookie names Atoll's web UI and API set (domain.auth.SESSION_COOKIE, web.context's CSRF and
# flash cookies), with the prefixes a browser may be told to keep them under.
ATOLL_COOKIE_PREFIXES = (b"atoll_", b"__Host-atoll", b"__Secure-atoll")
_NOTHING_TRIED: frozenset[str] = frozenset()  # the fast path tries one instance
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}

# (token, project id) → allowed? ; the check itself runs in a worker thread (it reads the store)
AccessCheck = Callable[[str, str], Awaitable[int]]
# token → 200 for an installation admin's API token, 403 another user's, 401 unknown
AdminCheck = Callable[[str], Awaitable[int]]


@dataclass
class Request:
    method: bytes
    url: bytes
    headers: list[tuple[bytes, bytes]]  # names lowercased (HTTP names are case-insensitive)
    body: bytes
    keep_alive: bool
    too_big: bool
    http11: bool
    alias: str | None = None  # x-node-alias
    node: str | None = None  # x-node-id
    token: str | None = None  # the bearer token of Authorization


def _response(status: int, headers: list[tuple[bytes, bytes]], body: bytes, keep_alive: bool) -> bytes:
    parts = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Unknown"))]
    for k, v in headers:
        parts.append(k + b": " + v + b"\r\n")
    parts.append(b"content-length: %d\r\n" % len(body))
    if not keep_alive:
        parts.append(b"connection: close\r\n")
    parts.append(b"\r\n")
    parts.append(body)
    return b"".join(parts)


def error(status: int, message: str, keep_alive: bool = True) -> bytes:
    body = json.dumps({"error": message}).encode()
    return _response(status, [(b"content-type", b"application/json")], body, keep_alive)


Answer = tuple[int, list[tuple[bytes, bytes]], bytes, bool]  # status, headers, body, keep-alive


# An Atoll token as a word of an Authorization value, whatever the scheme; an Atoll cookie (name=value
# and its separator) in a Cookie header.
_ATOLL_TOKEN_WORD = re.compile(rb"(?:^|\s)" + re.escape(ATOLL_TOKEN_PREFIX))
_ATOLL_COOKIE = re.compile(
    rb"(?:^|(?<=;))\s*(?:" + b"|".join(re.escape(p) for p in ATOLL_COOKIE_PREFIXES) + rb")[^;]*;?"
)


def is_atoll_cookie(name: bytes) -> bool:
    """Whether a cookie of this name is one of Atoll's own (a session, CSRF or flash cookie)."""
    return name.strip().startswith(ATOLL_COOKIE_PREFIXES)


def _tenant_only(name: bytes, value: bytes, consumed: bool) -> bytes:
    """``value`` of an Authorization or Cookie header without Atoll's credentials (b"": drop it).

    Cheap when there is nothing to cut: one substring search per header."""
    if name == b"authorization":
        if consumed or (ATOLL_TOKEN_PREFIX in value and _ATOLL_TOKEN_WORD.search(value)):
            return b""  # an Atoll token is never the service's business, whatever the alias
        return value
    if b"atoll" not in value:
        return value
    return _ATOLL_COOKIE.sub(b"", value).strip(b" ;")


def _request_head(req: Request, path: bytes, consumed: bool) -> tuple[bytes, bytes]:
    """The request line and headers for the instance (hop-by-hop, routing and Atoll's own
    credentials dropped: all of Authorization when Atoll consumed it), and the framing that ends
    them."""
    parts = [req.method + b" " + path + b" HTTP/1.1\r\n"]
    for k, v in req.headers:
        if k in _DROP:
            continue
        if k in _CREDENTIALS:
            v = _tenant_only(k, v, consumed)
            if not v:
                continue
        parts.append(k + b": " + v + b"\r\n")
    return b"".join(parts), b"content-length: %d\r\n\r\n" % len(req.body)


def _sets_atoll_cookie(set_cookie: bytes) -> bool:
    """A Set-Cookie value naming one of Atoll's cookies: a service must not log a browser into (or
    out of) Atoll's UI, which shares the gateway's host."""
    return is_atoll_cookie(set_cookie.partition(b"=")[0].strip())


def _upstream_response(status: int, headers: list[tuple[bytes, bytes]], body: bytes, keep: bool) -> bytes:
    kept = [
        (k, v)
        for k, v in headers
        if (n := k.lower()) not in _HOP and (n != b"set-cookie" or not _sets_atoll_cookie(v))
    ]
    return _response(status, kept, body, keep)


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


class Gateway:
    """Routing, access and forwarding for each request; holds the table, pool and metrics."""

    def __init__(
        self,
        recorder: Recorder,
        access: AccessCheck,
        metrics_token: str = "",
        admin: AdminCheck | None = None,
    ) -> None:
        self.table = Table()
        self.pool = Pool()
        self.recorder = recorder
        self.access = access
        # /metrics lists every project's nodes, aliases and traffic: only for the metrics token
        # (a Prometheus scrape config's bearer token) or an installation admin's API token.
        self.metrics_token = metrics_token.encode()
        self.admin = admin
        self.ejected: dict[str, float] = {}
        self._allowed: dict[tuple[str, str], tuple[int, float]] = {}  # → (status, expiry)

    async def handle(self, req: Request) -> bytes:
        start = time.perf_counter()
        keep = req.keep_alive
        alias_name, node_id, token = req.alias, req.node, req.token
        path = req.url
        if alias_name is None and node_id is None:
            if path.startswith(b"/alias/") or path.startswith(b"/node/"):
                which, _, rest = path[1:].partition(b"/")
                name, slash, below = rest.partition(b"/")
                name, _, query = name.partition(b"?")
                path = b"/" + below if slash else b"/"
                if query:
                    path += b"?" + query
                if which == b"alias":
                    alias_name = name.decode("latin-1")
                else:
                    node_id = name.decode("latin-1")
            else:
                return await self.own(req)
        if req.too_big:
            return error(413, "the request body is over 16 MB, the most a node accepts", False)
        alias: AliasRoute | None = None
        node: NodeRoute | None = None
        if alias_name is not None:
            if alias_name.startswith("datasphere.user."):
                alias_name = alias_name[len("datasphere.user.") :]
            alias = self.table.aliases.get(alias_name)
            if alias is None:
                return error(404, f"no alias named {alias_name!r}", keep)
            project_id, public = alias.project_id, alias.public
        else:
            node = self.table.nodes.get(node_id or "")
            if node is None:
                return error(404, f"no running node {node_id!r}", keep)
            project_id, public = node.project_id, False
        consumed = False
        if not public:
            denied = await self._authorize(token, project_id)
            if denied:
                return denied
            consumed = True
        status, out, served = await self._forward(req, path, alias, node, consumed)
        self._record(alias, served, status, time.perf_counter() - start)
        return out

    def _record(self, alias: AliasRoute | None, node: NodeRoute | None, status: int, elapsed: float) -> None:
        """Count a request for its alias (if it came through one) and the node that took it."""
        rec = self.recorder.record
        if alias is not None:
            rec("alias:" + alias.alias_id, "alias", alias.alias_id, alias.name, status, elapsed)
        if node is not None:
            rec("node:" + node.node_id, "node", node.node_id, node.name, status, elapsed)

    def fast(self, req: Request, reply: Callable[[Request, bytes | None], None]) -> bool:
        """The common case without a coroutine: a known route, an access answer in memory, an
        idle pooled connection to a Healthy instance. Anything else (or a failure before the
        instance answered) returns False or hands the request to ``reply(req, None)``, which
        takes the general path."""
        if req.too_big:
            return False
        alias: AliasRoute | None = None
        if req.alias is not None:
            alias = self.table.aliases.get(req.alias)
            if alias is None:
                return False
            project_id, public = alias.project_id, alias.public
            picked = alias.choose(self.ejected, _NOTHING_TRIED)
            if picked is None:
                return False
            node, b = picked
        elif req.node is not None:
            found = self.table.nodes.get(req.node)
            if found is None:
                return False
            node, project_id, public = found, found.project_id, False
            b_or_none = node.pick(self.ejected, _NOTHING_TRIED)
            if b_or_none is None:
                return False
            b = b_or_none
        else:
            return False
        if not public:
            cached = self._allowed.get((req.token or "", project_id))
            if cached is None or cached[0] != 200 or cached[1] < time.monotonic():
                node.unpick()  # the slow path picks the same instance
                return False
        conn = self.pool.idle_one(b)
        if conn is None:
            node.unpick()  # the slow path picks it again and connects
            return False
        start = time.perf_counter()
        head, tail = _request_head(req, req.url, not public)
        data = b"".join((head, b"host: %s:%d\r\n" % (b.host.encode(), b.port), tail, req.body))

        def done(result: Answer | Exception) -> None:
            if isinstance(result, Exception):
                if isinstance(result, UpstreamClosed) and not result.answered:
                    reply(req, None)  # a stale pooled connection or a vanished instance: retry
                    return
                status = 504 if isinstance(result, TimeoutError) else 502
                out = error(status, str(result) or "the instance did not answer", req.keep_alive)
            else:
                status, headers, body, keep = result
                if keep:
                    self.pool.release(b, conn)
                else:
                    conn.close()
                out = _upstream_response(status, headers, body, req.keep_alive)
            self._record(alias, node, status, time.perf_counter() - start)
            reply(req, out)

        conn.send(data, done)
        return True

    async def _metrics_denied(self, token: str | None, keep_alive: bool) -> bytes | None:
        """None when ``token`` may read /metrics, else the 401/403 answer."""
        if token and self.metrics_token and hmac.compare_digest(token.encode(), self.metrics_token):
            return None
        if token and self.admin is not None and token.startswith(ATOLL_TOKEN_PREFIX.decode()):
            status = await self._cached((token, ""), self.admin, token)  # no project has the id ""
            if status == 200:
                return None
            if status == 403:
                return error(
                    403, "/metrics needs the metrics token or an installation admin's API token", keep_alive
                )
        return _response(
            401,
            [(b"content-type", b"application/json"), (b"www-authenticate", b'Bearer realm="atoll-metrics"')],
            json.dumps(
                {
                    "error": "/metrics needs Authorization: Bearer <metrics token> (ATOLL_METRICS_TOKEN, "
                    "else the file metrics-token in Atoll's data dir) or an installation admin's API token"
                }
            ).encode(),
            keep_alive,
        )

    async def _cached(self, key: tuple[str, str], check: Callable[..., Awaitable[int]], *args: str) -> int:
        """``check(*args)``'s answer for ``key``, asked of the store at most every 10 s."""
        now = time.monotonic()
        cached = self._allowed.get(key)
        if cached is None or cached[1] < now:
            status = await check(*args)
            if len(self._allowed) > 10000:
                self._allowed.clear()
            self._allowed[key] = cached = (status, now + 10.0)
        return cached[0]

    async def _authorize(self, token: str | None, project_id: str) -> bytes | None:
        if not token:
            return error(401, "this endpoint is private: pass Authorization: Bearer <Atoll API token>")
        status = await self._cached((token, project_id), self.access, token, project_id)
        if status == 401:
            return error(401, "the API token is unknown, expired or revoked")
        if status == 403:
            return error(403, "this endpoint needs a role on its project")
        return None

    async def _forward(
        self, req: Request, path: bytes, alias: AliasRoute | None, node: NodeRoute | None, consumed: bool
    ) -> tuple[int, bytes, NodeRoute | None]:
        """(status, the response, the node that answered or was last tried)."""
        served: NodeRoute | None = node
        head, tail = _request_head(req, path, consumed)
        tried: set[str] = set()
        for _ in range(3):
            if alias is not None:
                picked = alias.choose(self.ejected, tried)
                if picked is None:
                    break
                target, b = picked
            else:
                assert node is not None
                target, b = node, node.pick(self.ejected, tried)  # type: ignore[assignment]
                if b is None:
                    break
            served = target
            tried.add(b.instance_id)
            try:
                conn, reused = await self.pool.acquire(b)
            except OSError:
                self.ejected[b.instance_id] = time.monotonic() + EJECT_S
                continue
            data = b"".join((head, b"host: %s:%d\r\n" % (b.host.encode(), b.port), tail, req.body))
            try:
                status, headers, body, keep = await conn.request(data)
            except UpstreamClosed as e:
                if e.answered:
                    return (
                        502,
                        error(502, "the instance closed the connection mid-response", req.keep_alive),
                        served,
                    )
                if not reused:
                    self.ejected[b.instance_id] = time.monotonic() + EJECT_S
                if reused:
                    tried.discard(b.instance_id)  # a stale pooled connection: the instance may be fine
                continue
            except TimeoutError:
                conn.close()
                return 504, error(504, f"the instance did not answer in {UPSTREAM_TIMEOUT_S:.0f} s"), served
            except OverflowError as e:
                return 502, error(502, str(e), req.keep_alive), served
            except RuntimeError as e:
                return 502, error(502, str(e), req.keep_alive), served
            if keep:
                self.pool.release(b, conn)
            else:
                conn.close()
            return status, _upstream_response(status, headers, body, req.keep_alive), served
        what = f"alias {alias.name!r}" if alias is not None else f"node {node.name if node else '?'!r}"
        return 503, error(503, f"{what} has no healthy instance to take the request", req.keep_alive), served

    async def own(self, req: Request) -> bytes:
        path = req.url.partition(b"?")[0]
        if path == b"/metrics" and req.method == b"GET":
            denied = await self._metrics_denied(req.token, req.keep_alive)
            if denied:
                return denied
            body = self.recorder.exposition()
            return _response(200, [(b"content-type", b"text/plain; version=0.0.4")], body, req.keep_alive)
        if path == b"/healthz":
            return _response(
                200, [(b"content-type", b"application/json")], b'{"status":"ok"}', req.keep_alive
            )
        return error(
            404,
            "name a deployment: the x-node-alias or x-node-id header, or the path /alias/<name>/…",
            req.keep_alive,
        )


class ClientConnection(asyncio.Protocol):
    """One client connection: parse requests, answer them in order (pipelining included)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.queue: deque[Request] = deque()
        self.busy = False
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.r_alias: str | None = None
        self.r_node: str | None = None
        self.r_token: str | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.size = 0
        self.too_big = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fatal(error(501, "WebSocket and other upgrades are not proxied to nodes", False))
        except httptools.HttpParserError:
            self._fatal(error(400, "malformed HTTP request", False))

    def _fatal(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
            self.transport.close()

    def on_message_begin(self) -> None:
        self._reset()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        self.headers.append((name, value))
        if name[:2] == b"x-":
            if name == b"x-node-alias":
                self.r_alias = value.decode("latin-1").strip()
            elif name == b"x-node-id":
                self.r_node = value.decode("latin-1").strip()
        elif name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            self.r_token = token.strip() if scheme.lower() == "bearer" else None

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > MAX_BODY:
            self.too_big = True
            self.body = []
        elif not self.too_big:
            self.body.append(body)

    def on_message_complete(self) -> None:
        p = self.parser
        req = Request(
            p.get_method(),
            self.url,
            self.headers,
            b"".join(self.body),
            p.should_keep_alive(),
            self.too_big,
            p.get_http_version() == "1.1",
            self.r_alias,
            self.r_node,
            self.r_token,
        )
        self.queue.append(req)
        if len(self.queue) > 32 and self.transport is not None:
            self.transport.pause_reading()
        if not self.busy:
            self._next()

    def _next(self) -> None:
        if not self.queue or self.transport is None or self.transport.is_closing():
            self.busy = False
            return
        self.busy = True
        req = self.queue.popleft()
        if self.gw.fast(req, self.reply):
            return
        self.slow(req)

    def slow(self, req: Request) -> None:
        """The general path, a coroutine: access checks, connecting, retries, errors."""
        task = asyncio.get_running_loop().create_task(self.gw.handle(req))
        task.add_done_callback(lambda t: self._done(t, req))

    def _done(self, task: asyncio.Task[bytes], req: Request) -> None:
        try:
            out = task.result()
        except Exception:
            log.exception("gateway request failed")
            out = error(500, "the gateway failed on this request", False)
            req.keep_alive = False
        self.reply(req, out)

    def reply(self, req: Request, out: bytes | None) -> None:
        """Answer ``req`` (None: the fast path gave it up; take the general one)."""
        if out is None:
            self.slow(req)
            return
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(out)
        if not req.keep_alive or req.too_big:
            self.transport.close()
            return
        self.transport.resume_reading()
        self._next()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
