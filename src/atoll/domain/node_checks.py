"""How Atoll watches a node's instances: the health check (HTTP GET of a path, or gRPC's
grpc.health.v1 Check of a service; spec §6.1's "Health check") and the telemetry scrape."""

from __future__ import annotations

import re
from typing import Any

from atoll.errors import Invalid

PATH_RE = re.compile(r"^/[\x21-\x7e]{0,255}$")
SERVICE_RE = re.compile(r"^[A-Za-z0-9_.]{0,255}$")  # a gRPC service name; empty: the whole server
HEALTH_DEFAULTS: dict[str, Any] = {
    "type": "HTTP",  # HTTP: a GET of path; GRPC: grpc.health.v1 Check of service
    "service": "",
    "path": "/",
    "timeoutS": 1.0,
    "intervalS": 5.0,
    "healthyThreshold": 1,
    "unhealthyThreshold": 3,
}
MODEL_HEALTH_PATH = "/v2/health/ready"


def check_path(value: Any, fld: str) -> str:
    if not isinstance(value, str) or not PATH_RE.match(value):
        raise Invalid(f"{fld} must be an absolute URL path such as /healthz (got {value!r})", field=fld)
    return value


def check_port(value: Any, fld: str) -> int:
    if not isinstance(value, int) or not 1 <= value <= 65535:
        raise Invalid(f"{fld} must be a TCP port, 1-65535 (got {value!r})", field=fld)
    return value


def health(value: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    out = {**HEALTH_DEFAULTS, **({"path": MODEL_HEALTH_PATH} if kind == "model" else {})}
    out.update({k: v for k, v in (value or {}).items() if v is not None})
    check_path(out["path"], "healthCheck.path")
    kind_of_check = out["type"]
    if not isinstance(kind_of_check, str) or kind_of_check.upper() not in ("HTTP", "GRPC"):
        raise Invalid(
            f"healthCheck.type must be HTTP or GRPC (got {kind_of_check!r})", field="healthCheck.type"
        )
    out["type"] = kind_of_check.upper()
    if not isinstance(out["service"], str) or not SERVICE_RE.match(out["service"]):
        raise Invalid(
            "healthCheck.service must be a gRPC service name such as pkg.Service", field="healthCheck.service"
        )
    for key, lo, hi in (("timeoutS", 0.1, 60), ("intervalS", 0.2, 3600)):
        if not isinstance(out[key], int | float) or not lo <= out[key] <= hi:
            raise Invalid(f"healthCheck.{key} must be {lo}-{hi} seconds", field=f"healthCheck.{key}")
    for key in ("healthyThreshold", "unhealthyThreshold"):
        if not isinstance(out[key], int) or not 1 <= out[key] <= 10:
            raise Invalid(f"healthCheck.{key} must be 1-10 checks", field=f"healthCheck.{key}")
    if out.get("port") is not None:
        check_port(out["port"], "healthCheck.port")
    return out


def telemetry(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if not value:
        return None
    out: dict[str, Any] = {"path": check_path(value.get("path", "/metrics"), "telemetry.path")}
    if value.get("port") is not None:
        out["port"] = check_port(value["port"], "telemetry.port")
    return out
