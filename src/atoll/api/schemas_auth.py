"""Users, sessions and API tokens: request and response bodies."""

from __future__ import annotations

from pydantic import Field

from atoll.api.bounds import (
    Days,
    Id,
    Password,
    Username,
)
from atoll.api.schemas import ApiModel, Input, Timestamp

# --- users, sessions, tokens ----------------------------------------------------------------


class UserOut(ApiModel):
    id: str
    username: str
    email: str
    display_name: str
    is_admin: bool
    created_at: Timestamp


class UserCreate(Input):
    username: str = Field(max_length=64)
    password: Password
    email: str = Field(default="", max_length=254)
    display_name: str = Field(default="", max_length=128)
    is_admin: bool = False
    organization_id: Id | None = Field(
        default=None, description="Also make the user a member of this organization"
    )


class PasswordChange(Input):
    current_password: Password
    new_password: Password


class SignIn(Input):
    username: Username
    password: Password


class SessionOut(ApiModel):
    user: UserOut
    csrf_token: str
    expires_at: Timestamp


class TokenLogin(Input):
    """Exchange a username and password for a personal API token (what `atoll login` does)."""

    username: Username
    password: Password
    name: str = Field(default="cli", max_length=64)
    expires_in_days: Days | None = 90


class TokenCreate(Input):
    name: str = Field(max_length=64)
    expires_in_days: Days | None = 90


class TokenOut(ApiModel):
    id: str
    name: str
    prefix: str
    created_at: Timestamp
    expires_at: Timestamp | None
    last_used_at: Timestamp | None
    state: str
    project_id: str | None = Field(
        default=None, description="Set: an external IDE link, valid for this project's JupyterLab only"
    )


class NewTokenOut(TokenOut):
    token: str = Field(description="The token itself. Shown only in this response.")
