"""A node's endpoint: how the data plane talks to its instances (spec §6.1's "Endpoint").

DataSphere's Docker node form has an endpoint type (HTTP, HTTP/2 or gRPC), a timeout and an
idle timeout. Atoll adds what LLM servers need from the proxy in front of them: a cap on the
requests each instance takes at once with a bounded queue in front, how long a request may wait
there (and, for a node scaled to zero, while its first instance starts), and the request-body
limit, which DataSphere fixes at 16 MB. The data plane enforces all of it; nothing here is read
per request.
"""

from __future__ import annotations

from typing import Any

from atoll.errors import Invalid

TYPES = ("HTTP", "HTTP2", "GRPC")  # HTTP: HTTP/1.1 to the instance; HTTP2 and GRPC: h2c
DEFAULTS: dict[str, Any] = {
    "type": "HTTP",
    # An LLM may think for minutes before its first token: ten minutes of silence allowed.
    "timeoutS": 600,
    "idleTimeoutS": 3600,
    "maxConcurrency": 0,  # no cap: the instance takes what comes
    "queueLength": 100,
    "queueTimeoutS": 30,
    "maxBodyMb": 16,
}
_BOUNDS: dict[str, tuple[int, int, str]] = {
    "timeoutS": (1, 86_400, "seconds"),
    "idleTimeoutS": (1, 86_400, "seconds"),
    "maxConcurrency": (0, 10_000, "requests (0: no cap)"),
    "queueLength": (0, 100_000, "requests"),
    "queueTimeoutS": (1, 600, "seconds"),
    "maxBodyMb": (1, 1024, "MB"),
}


def endpoint(value: dict[str, Any] | None, old: dict[str, Any] | None = None) -> dict[str, Any]:
    """The endpoint settings: given fields over the node's current ones over the defaults."""
    out = {**DEFAULTS, **(old or {})}
    for key, v in (value or {}).items():
        if key not in DEFAULTS:
            raise Invalid(f"endpoint.{key} is not an endpoint setting", field=f"endpoint.{key}")
        if v is not None:
            out[key] = v
    kind = out["type"]
    if not isinstance(kind, str) or kind.upper() not in TYPES:
        raise Invalid(
            f"endpoint.type must be one of {', '.join(TYPES)} (got {kind!r})", field="endpoint.type"
        )
    out["type"] = kind.upper()
    for key, (lo, hi, unit) in _BOUNDS.items():
        v = out[key]
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise Invalid(f"endpoint.{key} must be a whole number, {lo}-{hi} {unit}", field=f"endpoint.{key}")
    return out


def of(spec: dict[str, Any]) -> dict[str, Any]:
    """A stored node spec's endpoint, defaults filled (nodes made before endpoints existed)."""
    return {**DEFAULTS, **(spec.get("endpoint") or {})}
