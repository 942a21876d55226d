"""The catalogue of configurations: bodies."""

from __future__ import annotations

from pydantic import Field

from atoll.api.bounds import (
    Amount,
    Count,
    Description,
    Short,
)
from atoll.api.schemas import ApiModel, Input

# --- catalogue ------------------------------------------------------------------------------


class ConfigurationOut(ApiModel):
    name: str
    description: str
    vcpu: float
    ram_gb: float
    gpu_count: int
    gpu_type: str
    vram_gb: float
    units_per_second: int
    async_units_per_second: int | None
    units_per_hour: int
    platform: str
    access_tier: str
    enabled: bool
    available: bool
    availability_reason: str
    allowed: bool | None = Field(default=None, description="Allowed by the community, when one is given")


class ConfigurationIn(Input):
    description: Description | None = None
    vcpu: Amount | None = None
    ram_gb: Amount | None = None
    gpu_count: Count | None = None
    gpu_type: Short | None = None
    vram_gb: Amount | None = None
    units_per_second: Count | None = None
    async_units_per_second: Count | None = None
    platform: str | None = Field(default=None, max_length=64)
    access_tier: str | None = Field(default=None, max_length=16)
    enabled: bool | None = None
    sort_order: Count | None = None
