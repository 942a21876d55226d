"""Notebook servers and notebook runs: bodies."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from atoll.api.bounds import (
    MAX_ITEMS,
    Days,
    EnvName,
)
from atoll.api.schemas import ApiModel, Input, Timestamp

# --- notebooks -------------------------------------------------------------------------------


class NotebookOpen(Input):
    configuration: str | None = Field(
        None, max_length=32, description="A configuration name; default: the project's defaultConfiguration"
    )


class NotebookPhase(ApiModel):
    phase: str  # preparing | queued | starting | ready | stopping | stopped | failed
    at: Timestamp
    seconds: float | None = None  # how long it lasted (still running: so far); None for the end


class NotebookIdle(ApiModel):
    timeout: str  # the project's vmInactivityTimeout, e.g. "10800s"
    last_activity_at: Timestamp | None = None
    last_activity: str = ""
    release_at: Timestamp | None = None
    seconds_left: float | None = None


class NotebookOut(ApiModel):
    project_id: str
    id: str | None = None  # None: the project never had a server
    state: str  # NONE | PREPARING | QUEUED | STARTING | READY | STOPPING | STOPPED | FAILED
    configuration: str | None = None
    detail: str = ""
    url: str | None = None  # the JupyterLab page through the gateway, when READY
    opened_by: str | None = None
    timeline: list[NotebookPhase] = []
    idle: NotebookIdle | None = None


class NotebookExecute(Input):
    """DataSphere's ``projects/{id}:execute`` body (cellId, spec and sparkConnectorId are not served)."""

    notebook_id: str = Field(
        max_length=200, description="Path of the .ipynb in the project's storage, up to 200 characters"
    )
    input_variables: dict[EnvName, Any] = Field(
        default_factory=dict, max_length=MAX_ITEMS, description="Become env vars of the run"
    )
    output_variable_names: list[EnvName] = Field(
        default_factory=list, max_length=MAX_ITEMS, description="Variables whose values come back"
    )
    configuration: str | None = Field(None, max_length=32, description="Default: the project's default")


class OperationError(ApiModel):
    message: str


class NotebookOperation(ApiModel):
    id: str
    description: str
    created_at: Timestamp
    created_by: str | None = None
    done: bool
    metadata: dict[str, Any]
    response: dict[str, Any] | None = None
    error: OperationError | None = None


class IdeLinkCreate(Input):
    expires_in_days: Days | None = Field(default=30, description="1-3650; null: never expires")


class IdeLinkOut(ApiModel):
    url: str = Field(description="The project's JupyterLab through Atoll's gateway")
    token: str = Field(description="Shown once: the password VS Code asks for (a project-scoped API token)")
    url_with_token: str = Field(description="What to paste into VS Code's 'Existing Jupyter Server'")
    token_id: str = Field(description="Revoke it with `atoll token revoke` / DELETE /tokens/{id}")
    expires_at: Timestamp | None = None
