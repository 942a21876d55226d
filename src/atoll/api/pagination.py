"""Cursor pagination over (created_at, id): stable under inserts, no offsets."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import Session

from atoll.errors import Invalid

T = TypeVar("T")
MAX_PAGE = 1000


def encode(created_at: datetime, rid: str) -> str:
    raw = json.dumps([created_at.isoformat(), rid]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        ts, rid = json.loads(raw)
        return datetime.fromisoformat(ts), str(rid)
    except (ValueError, TypeError) as e:
        raise Invalid("pageToken is not a token this API returned", field="pageToken") from e


def page(
    db: Session,
    query: Select[Any],
    model: Any,
    page_size: int,
    page_token: str | None,
    *,
    newest_first: bool = False,
) -> tuple[list[Any], str | None]:
    """One page of `query` (which selects `model`) and the token of the next page, if any;
    oldest first, or with ``newest_first`` the other way round (a token keeps its direction)."""
    if not 1 <= page_size <= MAX_PAGE:
        raise Invalid(f"pageSize must be between 1 and {MAX_PAGE}", field="pageSize")
    if page_token:
        ts, rid = decode(page_token)
        if db.get_bind().dialect.name == "sqlite":
            ts = ts.replace(tzinfo=None)
        if newest_first:
            query = query.where(or_(model.created_at < ts, and_(model.created_at == ts, model.id < rid)))
        else:
            query = query.where(or_(model.created_at > ts, and_(model.created_at == ts, model.id > rid)))
    order = (model.created_at.desc(), model.id.desc()) if newest_first else (model.created_at, model.id)
    rows = list(db.scalars(query.order_by(*order).limit(page_size + 1)))
    nxt = encode(rows[page_size - 1].created_at, rows[page_size - 1].id) if len(rows) > page_size else None
    return rows[:page_size], nxt
