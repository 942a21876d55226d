"""Projects' Docker images as the API shows them (spec §4.3)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from atoll.api.bounds import Description, Name
from atoll.api.schemas import ApiModel, Input

Repository = Annotated[str, StringConstraints(max_length=63)]
Tag = Annotated[str, StringConstraints(max_length=128)]
Dockerfile = Annotated[str, StringConstraints(max_length=64 * 1024)]


class ImageOut(ApiModel):
    id: str
    project_id: str
    name: str = Field(description="The repository, e.g. tensorflow")
    tag: str
    description: str
    dockerfile: str
    username: str | None = Field(default=None, description="For a private base image")
    password_secret: str | None = Field(default=None, description="The project secret with its password")
    status: str = Field(description="PENDING, BUILDING, READY or FAILED")
    detail: str = Field(description="The step being built, or why the build failed")
    failed_step: str = Field(description="The Dockerfile step that failed, e.g. 'Step 2/3 : RUN make'")
    reference: str = Field(
        description="Where it is kept: the registry's reference, or its name on the daemon"
    )
    image_id: str = Field(description="The daemon's content id: what workloads run")
    python_version: str
    has_jupyterlab: bool = Field(description="Its own JupyterLab; else notebooks get Atoll's")
    size_bytes: int | None = None
    build_seconds: float | None = None
    active: bool = Field(description="The project's notebooks run inside it")
    created_at: datetime
    started_at: datetime | None = None
    built_at: datetime | None = None


class ImageCreate(Input):
    name: Repository
    tag: Tag = "latest"
    description: Description = ""
    dockerfile: Dockerfile
    username: Annotated[str, StringConstraints(max_length=128)] | None = None
    password_secret: Name | None = Field(default=None, description="A project secret's name")


class ImageLog(ApiModel):
    id: str
    status: str
    detail: str
    failed_step: str
    offset: int = Field(description="Where this part of the log starts")
    next_offset: int = Field(description="Ask with offset=next_offset for what follows")
    log: str
