"""JSON columns with a shape: a Pydantic model on the Python side, plain JSON in the database.

A row's JSON is validated into its model when read and dumped from it when written, so code
reads ``wl.spec.image`` rather than ``wl.spec.get("image")``, and a misspelled key or a wrong
type fails where it is written, not where it is read. Models are frozen: a change is a new value
(assigned whole, which is also what lets SQLAlchemy see it).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from sqlalchemy import JSON
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class TypedJSON(TypeDecorator[Any]):
    """A JSON column holding one Pydantic model (dumped by alias, defaults left out)."""

    impl = JSON
    cache_ok = True

    def __init__(self, model: type[BaseModel]) -> None:
        super().__init__()
        self.model = model

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, self.model):
            value = self.model.model_validate(value)
        return value.model_dump(mode="json", by_alias=True, exclude_defaults=True)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else self.model.model_validate(value)
