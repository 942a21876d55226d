"""Role bindings and invites: bodies."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from atoll.api.bounds import (
    Count,
    Days,
    Password,
    Short,
    Username,
)
from atoll.api.schemas import ApiModel, Input, Timestamp

# --- access ---------------------------------------------------------------------------------


class AccessBindingOut(ApiModel):
    id: str
    resource_type: str
    resource_id: str
    subject_type: str
    subject_id: str
    subject_name: str
    role: str
    role_id: str
    created_at: Timestamp


class AccessBindingIn(Input):
    subject_type: Literal["user", "group"] = "user"
    subject: Username = Field(description="User id or username; group id or name")
    role: Short


class InviteCreate(Input):
    role: Short
    expires_in_days: Days = 7
    max_uses: Count = 1


class InviteOut(ApiModel):
    id: str
    resource_type: str
    resource_id: str
    role: str
    expires_at: Timestamp
    max_uses: int
    uses: int
    state: str
    created_at: Timestamp


class NewInviteOut(InviteOut):
    token: str
    url: str


class InviteInfo(ApiModel):
    resource_type: str
    resource_id: str
    resource_name: str
    role: str
    expires_at: Timestamp


class InviteAccept(Input):
    """Signed-in callers accept as themselves; others may create an account with the invite."""

    username: str | None = Field(default=None, max_length=64)
    password: Password | None = None
