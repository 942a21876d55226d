"""Organizations, groups, billing accounts, usage, communities and projects: bodies."""

from __future__ import annotations

from pydantic import Field

from atoll.api.bounds import (
    MAX_ITEMS,
    Amount,
    Count,
    Description,
    Id,
    Labels,
    Name,
    Short,
    Units,
    Username,
)
from atoll.api.schemas import ApiModel, Input, Timestamp

# --- organizations, groups, billing ---------------------------------------------------------


class OrganizationOut(ApiModel):
    id: str
    name: str
    description: str
    created_at: Timestamp


class OrganizationCreate(Input):
    name: Name
    description: Description = ""


class OrganizationUpdate(Input):
    name: Name | None = None
    description: Description | None = None


class GroupOut(ApiModel):
    id: str
    organization_id: str
    name: str
    description: str
    created_at: Timestamp


class GroupCreate(Input):
    organization_id: Id
    name: Name
    description: Description = ""


class GroupUpdate(Input):
    name: Name | None = None
    description: Description | None = None


class GroupMemberAdd(Input):
    user: Username = Field(description="User id or username")


class BillingAccountOut(ApiModel):
    id: str
    organization_id: str
    name: str
    description: str
    currency: str
    unit_price: float
    active: bool
    created_at: Timestamp


class BillingAccountCreate(Input):
    organization_id: Id
    name: Name
    description: Description = ""
    currency: str = Field(default="USD", max_length=8)
    unit_price: Amount = 0.0000096


class BillingAccountUpdate(Input):
    name: Name | None = None
    description: Description | None = None
    unit_price: Amount | None = None
    active: bool | None = None


class UsageOut(ApiModel):
    units: int
    cost: float | None = None
    currency: str | None = None
    since: Timestamp | None = None
    until: Timestamp | None = None


# --- communities and projects ---------------------------------------------------------------


class CommunityOut(ApiModel):
    id: str
    organization_id: str
    name: str
    description: str
    labels: dict[str, str]
    zone_id: str
    billing_account_id: str | None
    created_at: Timestamp
    created_by_id: str | None = Field(default=None, validation_alias="created_by")


class CommunityCreate(Input):
    organization_id: Id
    name: Name
    description: Description = ""
    labels: Labels = Field(default_factory=dict)
    zone_id: Name | None = None
    billing_account_id: Id | None = None


class CommunityUpdate(Input):
    name: Name | None = None
    description: Description | None = None
    labels: Labels | None = None
    zone_id: Name | None = None


class BillingLink(Input):
    billing_account_id: Id | None


class Restrictions(ApiModel):
    allowed_configurations: list[str] | None = Field(
        default=None, description="Configurations the community's projects may use; null allows all"
    )
    features: dict[str, bool] = Field(default_factory=dict)


class RestrictionsUpdate(Input):
    allowed_configurations: list[Short] | None = Field(default=None, max_length=1000)
    allow_all_configurations: bool = False
    features: dict[Name, bool] | None = Field(default=None, max_length=MAX_ITEMS)


class ProjectSettings(ApiModel):
    default_configuration: str | None = None
    default_environment: str | None = Field(
        default=None,
        description="What notebooks and jobs without env.python run in; null: the default built-in one",
    )
    active_image_id: str | None = Field(
        default=None,
        description="The project's Docker image its notebooks run in (POST /images/{id}:activate); "
        "null: none, they run in the environment",
    )
    vm_inactivity_timeout: str = "10800s"
    stale_exec_timeout_mode: str = "NO_TIMEOUT"
    ide: str = "JUPYTER_LAB"


class ProjectSettingsIn(Input):
    default_configuration: Short | None = None
    default_environment: Short | None = None
    vm_inactivity_timeout: Short | Count | None = None
    stale_exec_timeout_mode: Short | None = None
    ide: Short | None = None


class ProjectLimits(ApiModel):
    balance: int | None = None
    max_units_per_hour: int | None = None
    max_units_per_execution: int | None = None


class ProjectLimitsIn(Input):
    balance: Units | None = None
    max_units_per_hour: Units | None = None
    max_units_per_execution: Units | None = None


class ProjectOut(ApiModel):
    id: str
    community_id: str
    community_name: str = Field(default="", description="Shown to every project member, for display")
    name: str
    description: str
    labels: dict[str, str]
    settings: ProjectSettings
    created_at: Timestamp
    created_by_id: str | None = None


class ProjectCreate(Input):
    community_id: Id
    name: Name
    description: Description = ""
    labels: Labels = Field(default_factory=dict)
    settings: ProjectSettingsIn | None = None
    limits: ProjectLimitsIn | None = None


class ProjectUpdate(Input):
    name: Name | None = None
    description: Description | None = None
    labels: Labels | None = None
    settings: ProjectSettingsIn | None = None
