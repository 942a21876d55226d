"""Environments as the API shows them: the installation's built-in ones and their state here."""

from __future__ import annotations

from pydantic import Field

from atoll.api.schemas import ApiModel


class EnvironmentOut(ApiModel):
    name: str
    title: str
    description: str
    built_in: bool
    status: str = Field(description="PENDING, BUILDING, READY or FAILED on this machine")
    detail: str = Field(description="What the build does now, or why it failed")
    packages_locked: int = Field(description="Pinned packages in its lock file")
    packages_installed: int | None = None
    size_bytes: int | None = Field(
        default=None, description="On disk (files hard-linked from uv's cache count once)"
    )
    build_seconds: float | None = None
    building_since: float | None = Field(default=None, description="Unix time the running build began")
    key: str = Field(description="Content key: equal package sets share one build")
    default: bool = Field(description="What notebooks run in unless a project says otherwise")
