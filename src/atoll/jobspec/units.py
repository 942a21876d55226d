"""Human sizes (``150Gb``) and durations (``15s``) as DataSphere's config.yaml writes them (spec §5.2)."""

from __future__ import annotations

import math
import re

from atoll.errors import Invalid

GIB = 1 << 30

# DataSphere counts sizes in binary units (it shifts bytes by 30 to get "Gb"), so 1Gb here is 2**30 bytes.
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:([kmgtp])(?:i?b)?|b)?\s*$", re.IGNORECASE)
_SIZE_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}

# The same grammar as DataSphere's parse_human_duration: each unit at most once, in this order.
_DURATION_RE = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$")


def parse_size(value: object, field: str) -> int:
    """Bytes from a human size: ``150Gb``, ``1.5TB``, ``100 GiB``, ``512M``, or a plain byte count."""
    m = _SIZE_RE.match(value) if isinstance(value, str) else None
    if not m:
        raise Invalid(f"{field} must be a size such as '150Gb' or '1Tb' (got {value!r})", field=field)
    number, unit = m.group(1), (m.group(2) or "").lower()
    return math.ceil(float(number) * (1024 ** _SIZE_POWERS[unit]))


def size_to_gb(size_bytes: int) -> int:
    """Whole gigabytes, rounded up (DataSphere rounds working storage up, never down)."""
    return -(-size_bytes // GIB)


def parse_duration(value: object, field: str) -> float:
    """Seconds from a human duration: ``15s``, ``2m30s``, ``1h``, ``500ms``, ``1d``."""
    m = _DURATION_RE.match(value.strip()) if isinstance(value, str) else None
    if not m or not any(m.groups()):
        raise Invalid(
            f"{field} must be a duration such as '15s', '2m30s' or '1h' (got {value!r})", field=field
        )
    d, h, mi, s, ms = (int(g) if g else 0 for g in m.groups())
    return d * 86400 + h * 3600 + mi * 60 + s + ms / 1000


def format_gb(size_gb: int) -> str:
    """``150Gb``: the spelling config.yaml uses, for messages and round trips."""
    return f"{size_gb}Gb"


def human_bytes(size: int) -> str:
    """``5.0 GB``-style size for messages (binary units, as the limits are)."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"
