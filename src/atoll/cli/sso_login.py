"""`atoll login --sso`: sign in through the organization's identity provider in a browser.

A native app's flow (RFC 8252): the CLI waits on a loopback port of this machine; the browser
signs in at the provider and comes back to Atoll, which sends it on to that port with a one-time
code; the CLI trades the code for a personal token, together with the verifier whose challenge it
sent at the start (PKCE's S256), so a code caught by another program on the machine is useless.
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
import threading
import webbrowser
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import typer

from atoll.cli.output import fail, usage
from atoll.client import Client

_PAGE = (
    "<!doctype html><meta charset=utf-8><title>Atoll</title>"
    "<body style='font-family:sans-serif;margin:3em'><h1>{title}</h1><p>{text}</p></body>"
)


@dataclass
class _Answer:
    code: str = ""
    error: str = ""


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


def _waiter(state: str, answer: _Answer, done: threading.Event) -> type[BaseHTTPRequestHandler]:
    class Callback(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            if parts.path != "/callback" or not secrets.compare_digest(query.get("state", ""), state):
                self._reply(
                    400, "Not this sign-in", "This page does not belong to the sign-in the CLI waits for."
                )
                return
            if query.get("error"):
                answer.error = query["error"][:400]
                self._reply(401, "Sign-in refused", answer.error)
            else:
                answer.code = query.get("code", "")
                self._reply(200, "Signed in", "The Atoll CLI is signed in. You can close this tab.")
            done.set()

        def _reply(self, status: int, title: str, text: str) -> None:
            body = _PAGE.format(title=html.escape(title), text=html.escape(text)).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the CLI's output is its own

    return Callback


def choose_provider(base: str, wanted: str | None) -> dict[str, Any]:
    with Client(base, anonymous=True) as c:
        providers: list[dict[str, Any]] = c.get("/auth/providers")
    if not providers:
        fail(f"{base} has no single sign-on provider: sign in with `atoll login` (username and password)")
    if wanted:
        found = [p for p in providers if p["name"] == wanted]
        if not found:
            names = ", ".join(p["name"] for p in providers)
            usage(f"no identity provider {wanted!r} at {base} (there is: {names})")
        return found[0]
    if len(providers) > 1:
        names = ", ".join(p["name"] for p in providers)
        usage(f"{base} has several identity providers: pick one with --provider ({names})")
    return providers[0]


def sso_token(
    base: str, provider: str | None, name: str, expires_in_days: int, open_browser: bool, timeout_s: float
) -> dict[str, Any]:
    """Sign in through the provider in a browser; returns the new token (the API's NewTokenOut)."""
    chosen = choose_provider(base, provider)
    state, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(48)
    answer, done = _Answer(), threading.Event()
    server = HTTPServer(("127.0.0.1", 0), _waiter(state, answer, done))
    thread = threading.Thread(target=server.serve_forever, name="atoll-sso-callback", daemon=True)
    thread.start()
    try:
        query = urlencode(
            {"cli_port": server.server_address[1], "cli_state": state, "cli_challenge": _challenge(verifier)}
        )
        url = f"{base}/login/sso/{chosen['name']}?{query}"
        typer.echo(f"Sign in with {chosen['displayName']} in your browser:\n  {url}", err=True)
        if open_browser:
            webbrowser.open(url)
        if not done.wait(timeout_s):
            fail(f"no sign-in came back within {int(timeout_s)} s: run `atoll login --sso` again")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    if answer.error:
        fail(f"sign-in refused: {answer.error}")
    body = {"code": answer.code, "verifier": verifier, "name": name, "expiresInDays": expires_in_days}
    with Client(base, anonymous=True) as c:
        token: dict[str, Any] = c.post("/auth/sso/tokens", body)
    return token
