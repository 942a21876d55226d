"""Single sign-on and the audit log: request and response bodies."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from atoll.api.bounds import Days
from atoll.api.schemas import ApiModel, Input, Timestamp

GroupName = Annotated[str, StringConstraints(max_length=255)]  # as the provider spells it


class ProviderPublic(ApiModel):
    """What the sign-in page and `atoll login --sso` need to know of a provider."""

    name: str
    display_name: str
    sign_in_url: str = Field(description="Open in a browser to sign in (add ?next=/path to land there)")


class ProviderOut(ApiModel):
    id: str
    name: str
    display_name: str
    issuer: str
    client_id: str
    has_client_secret: bool
    scopes: str
    organization_id: str
    groups_claim: str
    admin_groups: list[str]
    username_claim: str
    enabled: bool
    managed_by: str
    redirect_uri: str = Field(description="Register this redirect URI with the provider")
    created_at: Timestamp


class ProviderCreate(Input):
    name: str = Field(max_length=63)
    display_name: str = Field(default="", max_length=128)
    issuer: str = Field(max_length=512)
    client_id: str = Field(max_length=255)
    client_secret: str = Field(default="", max_length=1024)
    scopes: str = Field(default="openid profile email", max_length=512)
    organization_id: str = Field(max_length=64, description="The organization's id or name")
    groups_claim: str = Field(default="groups", max_length=128)
    admin_groups: list[GroupName] = Field(default_factory=list, max_length=100)
    username_claim: str = Field(default="preferred_username", max_length=128)
    enabled: bool = True


class ProviderUpdate(Input):
    display_name: str | None = Field(default=None, max_length=128)
    issuer: str | None = Field(default=None, max_length=512)
    client_id: str | None = Field(default=None, max_length=255)
    client_secret: str | None = Field(default=None, max_length=1024)
    scopes: str | None = Field(default=None, max_length=512)
    organization_id: str | None = Field(default=None, max_length=64)
    groups_claim: str | None = Field(default=None, max_length=128)
    admin_groups: list[GroupName] | None = Field(default=None, max_length=100)
    username_claim: str | None = Field(default=None, max_length=128)
    enabled: bool | None = None


class SsoTokenRedeem(Input):
    """What `atoll login --sso` sends back: the one-time code and the verifier of its challenge."""

    code: str = Field(max_length=256)
    verifier: str = Field(max_length=256)
    name: str = Field(default="cli", max_length=64)
    expires_in_days: Days | None = 90


class SsoSignOutOut(ApiModel):
    sessions_ended: int
    tokens_revoked: int


class AuditRecordOut(ApiModel):
    id: str
    time: Timestamp
    organization_id: str | None
    actor_id: str | None
    actor: str
    via: str
    address: str
    action: str
    route: str
    resource_type: str
    resource_id: str
    result: str
    status: int
    detail: str
