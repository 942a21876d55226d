"""Request and response bodies. camelCase on the wire, as DataSphere's API names its fields."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from atoll.api.bounds import (
    MAX_CONFIG_CHARS,
    MAX_ITEMS,
    MAX_MODULES,
    MAX_REQUIREMENTS,
    MAX_SECRET_VALUE,
    Amount,
    Count,
    Days,
    Description,
    EnvName,
    EnvVars,
    FileSize,
    Id,
    JobName,
    Labels,
    Name,
    Password,
    Short,
    Text,
    Units,
    Username,
)
from atoll.store.tables import as_utc

T = TypeVar("T")


Timestamp = Annotated[datetime, AfterValidator(as_utc)]


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)


class Input(ApiModel):
    """Request bodies refuse unknown fields, so a typo is an error rather than silently ignored.

    Strict: JSON's types are taken as sent (``true`` is not 1, ``"5"`` is not 5), and no number
    is NaN or infinite; every field is bounded (``atoll.api.bounds``).
    """

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", strict=True, allow_inf_nan=False
    )


class Page(ApiModel, Generic[T]):
    items: list[T]
    next_page_token: str | None = None


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


class NewTokenOut(TokenOut):
    token: str = Field(description="The token itself. Shown only in this response.")


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
    vm_inactivity_timeout: str = "10800s"
    stale_exec_timeout_mode: str = "NO_TIMEOUT"
    ide: str = "JUPYTER_LAB"


class ProjectSettingsIn(Input):
    default_configuration: Short | None = None
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


# --- jobs -----------------------------------------------------------------------------------


class FileRefIn(Input):
    path: Text
    sha256: str = Field(max_length=64)
    size: FileSize
    var: str | None = Field(default=None, max_length=50)
    is_dir: bool = False
    executable: bool = Field(default=False, description="Restore the executable bit (e.g. ./run.sh)")


class PipOptionsIn(Input):
    index_url: Text | None = None
    extra_index_urls: list[Text] = Field(default_factory=list, max_length=MAX_ITEMS)
    trusted_hosts: list[Text] = Field(default_factory=list, max_length=MAX_ITEMS)
    no_deps: bool = False


class PythonEnvIn(Input):
    version: Short
    requirements: list[Text] = Field(default_factory=list, max_length=MAX_REQUIREMENTS)
    pip: PipOptionsIn | None = Field(default=None, description="pip options from a requirements file")


VarName = Annotated[str, Field(max_length=50)]


class JobCreate(Input):
    config: str = Field(
        max_length=MAX_CONFIG_CHARS, description="The config.yaml text, as written (at most 64 KiB)"
    )
    name: JobName | None = None
    desc: Text | None = None
    inputs: list[FileRefIn] = Field(default_factory=list, max_length=MAX_ITEMS)
    modules: list[FileRefIn] = Field(
        default_factory=list, max_length=MAX_MODULES, description="Local Python modules (env.python)"
    )
    python: PythonEnvIn | None = None
    env_vars: EnvVars = Field(default_factory=dict, description="Values of env.vars copied from your env")
    data_ttl_days: Days | None = 14


class JobFork(Input):
    args: dict[VarName, Text] | None = Field(default=None, max_length=MAX_ITEMS)
    vars: dict[VarName, FileRefIn] | None = Field(
        default=None, max_length=MAX_ITEMS, description="New files for input variables"
    )
    output_vars: dict[VarName, Text] | None = Field(
        default=None, max_length=MAX_ITEMS, description="New paths for output variables"
    )
    env_vars: EnvVars | None = None
    name: JobName | None = None
    desc: Text | None = None
    cloud_instance_types: list[Short] | None = Field(default=None, max_length=MAX_ITEMS)


class JobCancel(Input):
    graceful: bool = False


class DataTtl(Input):
    days: Days | None = Field(description="Days to keep the job's data after it ends; null keeps it forever")


class OutputFile(ApiModel):
    path: str
    var: str | None = None
    sha256: str
    size: int
    is_dir: bool = False


class OutputDatasetOut(ApiModel):
    name: str
    id: str | None = Field(default=None, description="The dataset made; null when it was not made")
    size_bytes: int | None = None
    desc: str = ""
    error: str | None = Field(default=None, description="Why it was not made")


class DatasetOut(ApiModel):
    id: str
    project_id: str
    name: str
    description: str
    labels: dict[str, str]
    size_gb: int = Field(description="The size its config declared: the most it may hold")
    size_bytes: int = Field(description="What its files hold")
    job_id: str | None = Field(description="The job whose output-datasets made it")
    created_by_id: str | None = Field(default=None, validation_alias="created_by")
    created_at: Timestamp


class JobOut(ApiModel):
    id: str
    project_id: str
    name: str
    desc: str
    status: str
    status_details: str
    progress: dict[str, Any]
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    created_by_id: str | None = Field(default=None, validation_alias="created_by")
    parent_job_id: str | None
    actual_cloud_instance_type: str | None
    return_code: int | None
    data_ttl_days: int | None
    data_expires_at: Timestamp | None
    data_cleared: bool
    data_size_bytes: int
    config: str = Field(validation_alias="config_yaml")
    output_files: list[OutputFile] = Field(default_factory=list)
    file_errors: list[dict[str, str]] = Field(default_factory=list)
    output_datasets: list[OutputDatasetOut] = Field(
        default_factory=list, description="What each of the config's output-datasets became"
    )


class JobCreated(ApiModel):
    job: JobOut
    missing_files: list[str] = Field(description="sha256 of the files to upload before executing")


class LogChunkOut(ApiModel):
    stream: str
    data: str
    offset: int
    eof: bool
    status: str


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
