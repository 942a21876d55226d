"""Security headers on every response of the control-plane server: pages, API, static files,
errors (500s included: this wraps the whole app).

Atoll's pages run no inline script, so the Content-Security-Policy allows scripts, styles and
connections from Atoll's own origin only, and no framing by anyone (clickjacking). Two kinds of
page are different:

- the notebook proxy ``/nb/<project>/…`` serves JupyterLab, which sets its own policy and needs
  inline scripts: its headers are kept, but framing is limited to Atoll's own origin whatever
  Jupyter says;
- FastAPI's API explorer (``/api/v1/docs``) loads Swagger UI from its CDN and starts it with an
  inline script: that script is allowed by its hash, computed from the page as it is sent.

HSTS is sent only when the request came over https or the public URL is https.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Collection

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BASE_POLICY = (
    ("default-src", "'self'"),
    ("script-src", "'self'"),
    ("style-src", "'self'"),
    ("img-src", "'self' data:"),  # Pico's form controls draw their icons from data: SVGs
    ("font-src", "'self'"),
    ("connect-src", "'self'"),  # fetch() of the JSON API, SSE
    ("object-src", "'none'"),
    ("base-uri", "'self'"),
    ("frame-ancestors", "'none'"),
    ("form-action", "'self'"),
)
CDN = "https://cdn.jsdelivr.net"  # where FastAPI's Swagger UI page loads its bundle from
HSTS = "max-age=31536000"
NOTEBOOK_PREFIX = "/nb/"
_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.DOTALL | re.IGNORECASE)


def policy(**extra: str) -> str:
    """The base policy, with `extra` sources added to directives (``script_src="'sha256-…'"``)."""
    parts = []
    for name, sources in BASE_POLICY:
        more = extra.get(name.replace("-", "_"))
        parts.append(f"{name} {sources} {more}" if more else f"{name} {sources}")
    return "; ".join(parts)


CSP = policy()


def docs_policy(body: bytes) -> str:
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(m.group(1)).digest()).decode() + "'"
        for m in _INLINE_SCRIPT.finditer(body)
    )
    return policy(
        script_src=f"{CDN} {hashes}".strip(),
        style_src=f"{CDN} 'unsafe-inline'",  # Swagger UI's own; no user content on that page
        img_src="https://fastapi.tiangolo.com",
    )


def frame_self(csp: str) -> str:
    """`csp` with its frame-ancestors directive set to 'self' (added when it has none)."""
    directives = [d.strip() for d in csp.split(";") if d.strip()]
    kept = [d for d in directives if d.split()[0].lower() != "frame-ancestors"]
    return "; ".join([*kept, "frame-ancestors 'self'"])


class SecurityHeaders:
    """Pure ASGI middleware: adds the headers to ``http.response.start`` as it goes by."""

    def __init__(self, app: ASGIApp, *, public_https: bool = False, docs_paths: Collection[str] = ()) -> None:
        self.app = app
        self.public_https = public_https
        self.docs_paths = frozenset(p for p in docs_paths if p)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        https = self.public_https or scope.get("scheme") == "https"
        if path.startswith(NOTEBOOK_PREFIX):
            await self.app(scope, receive, self._notebook_send(send, https))
        elif path in self.docs_paths:
            await self.app(scope, receive, self._docs_send(send, https))
        else:
            await self.app(scope, receive, self._send(send, https))

    @staticmethod
    def _common(headers: MutableHeaders, https: bool) -> None:
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")  # pages use the Referer on their own origin
        if https:
            headers.setdefault("Strict-Transport-Security", HSTS)

    def _send(self, send: Send, https: bool) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", CSP)
                headers.setdefault("X-Frame-Options", "DENY")
                self._common(headers, https)
            await send(message)

        return wrapped

    def _notebook_send(self, send: Send, https: bool) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Proxied headers keep Jupyter's spelling; Starlette's lookups want lowercase names.
                message["headers"] = [(k.lower(), v) for k, v in message.get("headers", ())]
                headers = MutableHeaders(scope=message)
                policies = headers.getlist("Content-Security-Policy") or [""]
                del headers["Content-Security-Policy"]
                for csp in policies:
                    headers.append("Content-Security-Policy", frame_self(csp))
                if headers.get("X-Frame-Options", "").upper() != "DENY":
                    headers["X-Frame-Options"] = "SAMEORIGIN"
                self._common(headers, https)
            await send(message)

        return wrapped

    def _docs_send(self, send: Send, https: bool) -> Send:
        # The page is small: hold it back to hash its inline script, then send it whole.
        start: Message | None = None
        body: list[bytes] = []

        async def wrapped(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            body.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            headers = MutableHeaders(scope=start)
            headers.setdefault("Content-Security-Policy", docs_policy(b"".join(body)))
            headers.setdefault("X-Frame-Options", "DENY")
            self._common(headers, https)
            await send(start)
            await send({"type": "http.response.body", "body": b"".join(body), "more_body": False})

        return wrapped
