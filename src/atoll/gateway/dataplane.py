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
import time
from collections import deque
from collections.abc import Awaitable, Callable

import httptools

from atoll.gateway.messages import (
    ATOLL_TOKEN_PREFIX,
    METRICS_FORBIDDEN,
    METRICS_UNAUTHORIZED,
    Answer,
    Request,
    error,
    request_head,
    response,
    upstream_response,
)
from atoll.gateway.metrics import Recorder
from atoll.gateway.routing import EJECT_S, AliasRoute, NodeRoute, Table
from atoll.gateway.upstream import MAX_BODY, UPSTREAM_TIMEOUT_S, Pool, UpstreamClosed

log = logging.getLogger("atoll.gateway")
_NOTHING_TRIED: frozenset[str] = frozenset()  # the fast path tries one instance

# (token, project id) → allowed? ; the check itself runs in a worker thread (it reads the store)
AccessCheck = Callable[[str, str], Awaitable[int]]
# token → 200 for an installation admin's API token, 403 another user's, 401 unknown
AdminCheck = Callable[[str], Awaitable[int]]


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
        head, tail = request_head(req, req.url, not public)
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
                out = upstream_response(status, headers, body, req.keep_alive)
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
                return error(403, METRICS_FORBIDDEN, keep_alive)
        return response(
            401,
            [(b"content-type", b"application/json"), (b"www-authenticate", b'Bearer realm="atoll-metrics"')],
            json.dumps({"error": METRICS_UNAUTHORIZED}).encode(),
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
        head, tail = request_head(req, path, consumed)
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
            return status, upstream_response(status, headers, body, req.keep_alive), served
        what = f"alias {alias.name!r}" if alias is not None else f"node {node.name if node else '?'!r}"
        return 503, error(503, f"{what} has no healthy instance to take the request", req.keep_alive), served

    async def own(self, req: Request) -> bytes:
        path = req.url.partition(b"?")[0]
        if path == b"/metrics" and req.method == b"GET":
            denied = await self._metrics_denied(req.token, req.keep_alive)
            if denied:
                return denied
            body = self.recorder.exposition()
            return response(200, [(b"content-type", b"text/plain; version=0.0.4")], body, req.keep_alive)
        if path == b"/healthz":
            return response(200, [(b"content-type", b"application/json")], b'{"status":"ok"}', req.keep_alive)
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
