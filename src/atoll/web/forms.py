"""Turning form text into domain values and domain values into text, for the web UI."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from atoll.domain.access import ROLE_IDS, ResourceType
from atoll.errors import Invalid

ROLE_LABELS = {
    "viewer": "Viewer",
    "developer": "Developer",
    "editor": "Editor",
    "admin": "Admin",
    "member": "Member",
}


def role_label(role: str) -> str:
    return ROLE_LABELS.get(role, role)


def role_id(rtype: ResourceType | str, role: str) -> str:
    return ROLE_IDS.get((ResourceType(rtype), role), role)


def format_duration(seconds: int | None) -> str:
    """``10800`` → ``3h``; ``5400`` → ``1h30m``; the inverse of validation.parse_duration."""
    if not seconds:
        return ""
    h, rest = divmod(int(seconds), 3600)
    m, s = divmod(rest, 60)
    out = (f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{s}s" if s else "")
    return out


def format_when(dt: datetime | None) -> str:
    if dt is None:
        return "—"
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def format_units(value: int | None) -> str:
    return "no limit" if value is None else f"{value:,}".replace(",", " ")


def labels_text(labels: dict[str, Any] | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in (labels or {}).items())


def parse_labels(text: str, field: str = "labels") -> dict[str, str]:
    """``team=ml, env=dev`` (commas or new lines) → dict; the domain checks keys and values."""
    out: dict[str, str] = {}
    for part in text.replace("\n", ",").split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise Invalid(
                f"{field}: write labels as key=value, separated by commas (got {part!r})", field=field
            )
        out[key.strip()] = value.strip()
    return out


def parse_units(text: str, field: str) -> int | None:
    """Empty means no limit; otherwise a whole number of units."""
    text = text.strip().replace(" ", "").replace("_", "")
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise Invalid(
            f"{field} must be a whole number of units, or empty for no limit (got {text!r})", field=field
        ) from None


def parse_int(text: str, field: str, default: int) -> int:
    text = text.strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise Invalid(f"{field} must be a whole number (got {text!r})", field=field) from None
