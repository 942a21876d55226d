"""The TLS context of Atoll's HTTP clients, with its certificate authorities loaded at the first
TLS handshake instead of when the client is made.

Loading the CA bundle costs ~35 ms — a quarter of the CLI's start budget — and a CLI that talks
http:// to its server (a local install, a loopback tunnel) never uses it. So the context is made
empty (verifying: CERT_REQUIRED and host names checked, as ``ssl.create_default_context`` makes
it) and fills itself with the same authorities httpx would load — ``SSL_CERT_FILE``,
``SSL_CERT_DIR``, else certifi's bundle — just before its first handshake. A handshake therefore
never runs without them: nothing is verified less than with httpx's own default.
"""

from __future__ import annotations

import os
import ssl
import threading
from typing import Any


class CaOnFirstUse(ssl.SSLContext):
    """A client SSLContext that loads its CA certificates before its first handshake."""

    _loaded = False
    _lock = threading.Lock()

    def _load(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            if os.environ.get("SSL_CERT_FILE"):
                self.load_verify_locations(cafile=os.environ["SSL_CERT_FILE"])
            elif os.environ.get("SSL_CERT_DIR"):
                self.load_verify_locations(capath=os.environ["SSL_CERT_DIR"])
            else:
                import certifi

                self.load_verify_locations(cafile=certifi.where())
            self._loaded = True

    # httpx's sync transport wraps sockets, its async one (anyio) wraps memory BIOs.
    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        self._load()
        return super().wrap_socket(*args, **kwargs)

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        self._load()
        return super().wrap_bio(*args, **kwargs)


def client_context() -> ssl.SSLContext:
    """A verifying client context (CERT_REQUIRED, host names checked) whose CAs load on first use."""
    return CaOnFirstUse(ssl.PROTOCOL_TLS_CLIENT)
