"""Project secrets (names only go out): bodies."""

from __future__ import annotations

from pydantic import Field

from atoll.api.bounds import (
    MAX_SECRET_VALUE,
    Name,
)
from atoll.api.schemas import ApiModel, Input, Timestamp

# --- catalogue ------------------------------------------------------------------------------


# --- secrets --------------------------------------------------------------------------------


class SecretOut(ApiModel):
    id: str
    project_id: str
    name: str
    value: str = Field(default="***", description="Never the value: secrets are write-only")
    created_by_id: str | None = Field(default=None, validation_alias="created_by")
    created_at: Timestamp
    updated_at: Timestamp


class SecretCreate(Input):
    name: Name
    value: str = Field(max_length=MAX_SECRET_VALUE)


class SecretUpdate(Input):
    name: Name | None = None
    value: str | None = Field(default=None, max_length=MAX_SECRET_VALUE)
