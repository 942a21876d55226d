"""Field rules shared by the API, the CLI and the web forms (spec §1)."""

from __future__ import annotations

import re
from typing import Any

from atoll.errors import Invalid

NAME_RE = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
LABEL_KEY_RE = re.compile(r"^[a-z][-_0-9a-z]{0,62}$")
LABEL_VALUE_RE = re.compile(r"^[-_0-9a-z]{0,63}$")
USERNAME_RE = re.compile(r"^[a-z][-_.a-z0-9]{1,62}$")
MAX_LABELS = 64
MAX_DESCRIPTION = 256
MAX_DURATION_S = 10 * 366 * 24 * 3600
_DURATION_RE = re.compile(r"^\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s?)?\s*$")


def check_name(value: str, field: str = "name") -> str:
    if not NAME_RE.match(value or ""):
        raise Invalid(
            f"{field} must be 1-63 characters of lowercase letters, digits and hyphens, start with a "
            f"letter and not end with a hyphen (got {value!r})",
            field=field,
        )
    return value


RESOURCE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


def check_resource_name(value: str, field: str = "name") -> str:
    """Names of a project's saved models and datasets (dots and underscores allowed)."""
    if not isinstance(value, str) or not RESOURCE_NAME_RE.match(value):
        raise Invalid(
            f"{field} must be 1-63 lowercase letters, digits, '-', '_' or '.', starting with a letter "
            f"or digit (got {value!r})",
            field=field,
        )
    return value


def check_username(value: str, field: str = "username") -> str:
    if not USERNAME_RE.match(value or ""):
        raise Invalid(
            f"{field} must be 2-63 characters: lowercase letters, digits, '-', '_' or '.', "
            f"starting with a letter (got {value!r})",
            field=field,
        )
    return value


def check_description(value: str, field: str = "description") -> str:
    if len(value) > MAX_DESCRIPTION:
        raise Invalid(f"{field} must be at most {MAX_DESCRIPTION} characters (got {len(value)})", field=field)
    return value


def check_labels(value: dict[str, Any], field: str = "labels") -> dict[str, str]:
    if len(value) > MAX_LABELS:
        raise Invalid(f"{field}: at most {MAX_LABELS} labels (got {len(value)})", field=field)
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not LABEL_KEY_RE.match(k):
            raise Invalid(
                f"{field}: key {k!r} must match [a-z][-_0-9a-z]* and be at most 63 characters",
                field=f"{field}.{k}",
            )
        if not isinstance(v, str) or not LABEL_VALUE_RE.match(v):
            raise Invalid(
                f"{field}: value of {k!r} must match [-_0-9a-z]* and be at most 63 characters",
                field=f"{field}.{k}",
            )
        out[k] = v
    return out


def parse_duration(value: str | int, field: str) -> int:
    """Seconds from ``10800``, ``"10800s"``, ``"3h"``, ``"1h30m"`` (protobuf Duration style too)."""
    if isinstance(value, bool):
        raise Invalid(f"{field} must be a duration such as '3h', '90m' or '1800s'", field=field)
    if isinstance(value, int):
        seconds = value
    else:
        m = _DURATION_RE.match(str(value))
        if not m or not any(m.groups()):
            raise Invalid(
                f"{field} must be a duration such as '3h', '90m' or '1800s' (got {value!r})", field=field
            )
        h, mi, s = (int(g) if g else 0 for g in m.groups())
        seconds = h * 3600 + mi * 60 + s
    if seconds <= 0 or seconds > MAX_DURATION_S:
        raise Invalid(f"{field} must be between 1 second and 10 years (got {value!r})", field=field)
    return seconds


def format_duration(seconds: int) -> str:
    """Protobuf-style duration string, as DataSphere's API shows it: ``10800s``."""
    return f"{seconds}s"
