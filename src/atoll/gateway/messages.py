"""What the gateway port says on its own behalf, and which cookies are Atoll's.

HAProxy's Lua (dataplane/atoll.lua) cuts Atoll's own cookies out of what tenant code sees;
``is_atoll_cookie`` is the same rule in Python, so tests/security can check that every cookie
name Atoll sets is one that rule catches.
"""

from __future__ import annotations

# /metrics refused: no credential, or an API token of a non-admin.
METRICS_UNAUTHORIZED = (
    "/metrics needs Authorization: Bearer <metrics token> (ATOLL_METRICS_TOKEN, else the file "
    "metrics-token in Atoll's data dir) or an installation admin's API token"
)
METRICS_FORBIDDEN = "/metrics needs the metrics token or an installation admin's API token"
# Cookie names Atoll's web UI and API set (domain.auth.SESSION_COOKIE, web.context's CSRF and
# flash cookies), with the prefixes a browser may be told to keep them under.
ATOLL_COOKIE_PREFIXES = (b"atoll_", b"__Host-atoll", b"__Secure-atoll")


def is_atoll_cookie(name: bytes) -> bool:
    """Whether a cookie of this name is one of Atoll's own (a session, CSRF or flash cookie)."""
    return name.strip().startswith(ATOLL_COOKIE_PREFIXES)
