"""What every table shares: the declarative base, timestamps, ids."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(dt: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything Atoll stores is UTC."""
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def new_id(prefix: str) -> str:
    """Readable, unguessable ids: ``prj-1f3c…`` (prefix names the resource type)."""
    return f"{prefix}-{secrets.token_hex(8)}"


class Base(DeclarativeBase):
    type_annotation_map = {datetime: DateTime(timezone=True), dict[str, Any]: JSON}


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
