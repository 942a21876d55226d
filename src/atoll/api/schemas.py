"""Request and response bodies. camelCase on the wire, as DataSphere's API names its fields."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from atoll.store.tables import as_utc

T = TypeVar("T")


Timestamp = Annotated[datetime, AfterValidator(as_utc)]


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)


class Input(ApiModel):
    """Request bodies refuse unknown fields, so a typo is an error rather than silently ignored.

    Strict: JSON's types are taken as sent (``true`` is not 1, ``"5"`` is not 5), and no number
    is NaN or infinite; every field is bounded (``atoll.api.bounds``).
    """

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", strict=True, allow_inf_nan=False
    )


class Page(ApiModel, Generic[T]):
    items: list[T]
    next_page_token: str | None = None
