"""HTTP/1.1 messages as the gateway writes them, and what of a visitor's request reaches tenant
code: hop-by-hop and routing headers dropped, Atoll's own cookies and API tokens cut out, an
instance's ``Set-Cookie`` for an Atoll cookie name held back (see dataplane.py)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from http import HTTPStatus

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
# Forwarded without Atoll's own credentials (see tenant_only).
_CREDENTIALS = frozenset({b"authorization", b"cookie"})
# /metrics refused (both data planes): no credential, or an API token of a non-admin.
METRICS_UNAUTHORIZED = (
    "/metrics needs Authorization: Bearer <metrics token> (ATOLL_METRICS_TOKEN, else the file "
    "metrics-token in Atoll's data dir) or an installation admin's API token"
)
METRICS_FORBIDDEN = "/metrics needs the metrics token or an installation admin's API token"
ATOLL_TOKEN_PREFIX = b"atl_"  # an Atoll API token (domain.auth.TOKEN_PREFIX)
# Cookie names Atoll's web UI and API set (domain.auth.SESSION_COOKIE, web.context's CSRF and
# flash cookies), with the prefixes a browser may be told to keep them under.
ATOLL_COOKIE_PREFIXES = (b"atoll_", b"__Host-atoll", b"__Secure-atoll")
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}


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


def response(status: int, headers: list[tuple[bytes, bytes]], body: bytes, keep_alive: bool) -> bytes:
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
    return response(status, [(b"content-type", b"application/json")], body, keep_alive)


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


def tenant_only(name: bytes, value: bytes, consumed: bool) -> bytes:
    """``value`` of an Authorization or Cookie header without Atoll's credentials (b"": drop it).

    Cheap when there is nothing to cut: one substring search per header."""
    if name == b"authorization":
        if consumed or (ATOLL_TOKEN_PREFIX in value and _ATOLL_TOKEN_WORD.search(value)):
            return b""  # an Atoll token is never the service's business, whatever the alias
        return value
    if b"atoll" not in value:
        return value
    return _ATOLL_COOKIE.sub(b"", value).strip(b" ;")


def request_head(req: Request, path: bytes, consumed: bool) -> tuple[bytes, bytes]:
    """The request line and headers for the instance (hop-by-hop, routing and Atoll's own
    credentials dropped: all of Authorization when Atoll consumed it), and the framing that ends
    them."""
    parts = [req.method + b" " + path + b" HTTP/1.1\r\n"]
    for k, v in req.headers:
        if k in _DROP:
            continue
        if k in _CREDENTIALS:
            v = tenant_only(k, v, consumed)
            if not v:
                continue
        parts.append(k + b": " + v + b"\r\n")
    return b"".join(parts), b"content-length: %d\r\n\r\n" % len(req.body)


def sets_atoll_cookie(set_cookie: bytes) -> bool:
    """A Set-Cookie value naming one of Atoll's cookies: a service must not log a browser into (or
    out of) Atoll's UI, which shares the gateway's host."""
    return is_atoll_cookie(set_cookie.partition(b"=")[0].strip())


def upstream_response(status: int, headers: list[tuple[bytes, bytes]], body: bytes, keep: bool) -> bytes:
    kept = [
        (k, v)
        for k, v in headers
        if (n := k.lower()) not in _HOP and (n != b"set-cookie" or not sets_atoll_cookie(v))
    ]
    return response(status, kept, body, keep)
