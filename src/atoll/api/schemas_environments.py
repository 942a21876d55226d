"""Environments as the API shows them: the installation's built-in ones and projects' own."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from atoll.api.bounds import Description, Name, Short
from atoll.api.schemas import ApiModel, Input


class EnvironmentOut(ApiModel):
    id: str
    name: str
    title: str
    description: str
    built_in: bool
    project_id: str | None = None
    base: str | None = Field(default=None, description="The built-in environment it is made on top of")
    python_version: str
    requirements: list[str] = Field(description="What it asked for (a built-in's: its lock file's pins)")
    packages_locked: int = Field(description="Packages its build resolves (pins and requirements)")
    status: str = Field(description="PENDING, BUILDING, READY or FAILED")
    detail: str = Field(description="What the build does now, or why it failed")
    packages_installed: int | None = None
    size_bytes: int | None = Field(default=None, description="On disk, each hard-linked file once")
    build_seconds: float | None = None
    started_at: datetime | None = None
    built_at: datetime | None = None
    key: str = Field(description="Content key of the build: equal contents share one")
    default: bool = Field(description="The built-in one projects run in unless they choose another")
    created_at: datetime


Requirement = Annotated[str, StringConstraints(max_length=256)]


class EnvironmentCreate(Input):
    name: Name
    description: Description = ""
    requirements: list[Requirement] = Field(default_factory=list, max_length=500)
    base: Name | None = Field(default=None, description="A built-in environment to add the requirements to")
    python_version: Short | None = Field(default=None, description="major.minor; default: the base's")


class EnvironmentLog(ApiModel):
    id: str
    status: str
    log: str
