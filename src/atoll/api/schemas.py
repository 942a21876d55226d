"""Request and response bodies. camelCase on the wire, as DataSphere's API names its fields."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from atoll.store.models import as_utc

T = TypeVar("T")


Timestamp = Annotated[datetime, AfterValidator(as_utc)]


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)


class Input(ApiModel):
    """Request bodies refuse unknown fields, so a typo is an error rather than silently ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


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
    username: str
    password: str
    email: str = Field(default="", max_length=254)
    display_name: str = Field(default="", max_length=128)
    is_admin: bool = False
    organization_id: str | None = Field(
        default=None, description="Also make the user a member of this organization"
    )


class PasswordChange(Input):
    current_password: str
    new_password: str


class SignIn(Input):
    username: str
    password: str


class SessionOut(ApiModel):
    user: UserOut
    csrf_token: str
    expires_at: Timestamp


class TokenLogin(Input):
    """Exchange a username and password for a personal API token (what `atoll login` does)."""

    username: str
    password: str
    name: str = "cli"
    expires_in_days: int | None = 90


class TokenCreate(Input):
    name: str
    expires_in_days: int | None = 90


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
    name: str
    description: str = ""


class OrganizationUpdate(Input):
    name: str | None = None
    description: str | None = None


class GroupOut(ApiModel):
    id: str
    organization_id: str
    name: str
    description: str
    created_at: Timestamp


class GroupCreate(Input):
    organization_id: str
    name: str
    description: str = ""


class GroupUpdate(Input):
    name: str | None = None
    description: str | None = None


class GroupMemberAdd(Input):
    user: str = Field(description="User id or username")


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
    organization_id: str
    name: str
    description: str = ""
    currency: str = "USD"
    unit_price: float = 0.0000096


class BillingAccountUpdate(Input):
    name: str | None = None
    description: str | None = None
    unit_price: float | None = None
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
    organization_id: str
    name: str
    description: str = ""
    labels: dict[str, Any] = Field(default_factory=dict)
    zone_id: str | None = None
    billing_account_id: str | None = None


class CommunityUpdate(Input):
    name: str | None = None
    description: str | None = None
    labels: dict[str, Any] | None = None
    zone_id: str | None = None


class BillingLink(Input):
    billing_account_id: str | None


class Restrictions(ApiModel):
    allowed_configurations: list[str] | None = Field(
        default=None, description="Configurations the community's projects may use; null allows all"
    )
    features: dict[str, bool] = Field(default_factory=dict)


class RestrictionsUpdate(Input):
    allowed_configurations: list[str] | None = None
    allow_all_configurations: bool = False
    features: dict[str, bool] | None = None


class ProjectSettings(ApiModel):
    default_configuration: str | None = None
    vm_inactivity_timeout: str = "10800s"
    stale_exec_timeout_mode: str = "NO_TIMEOUT"
    ide: str = "JUPYTER_LAB"


class ProjectSettingsIn(Input):
    default_configuration: str | None = None
    vm_inactivity_timeout: str | int | None = None
    stale_exec_timeout_mode: str | None = None
    ide: str | None = None


class ProjectLimits(ApiModel):
    balance: int | None = None
    max_units_per_hour: int | None = None
    max_units_per_execution: int | None = None


class ProjectLimitsIn(Input):
    balance: int | None = None
    max_units_per_hour: int | None = None
    max_units_per_execution: int | None = None


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
    community_id: str
    name: str
    description: str = ""
    labels: dict[str, Any] = Field(default_factory=dict)
    settings: ProjectSettingsIn | None = None
    limits: ProjectLimitsIn | None = None


class ProjectUpdate(Input):
    name: str | None = None
    description: str | None = None
    labels: dict[str, Any] | None = None
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
    subject: str = Field(description="User id or username; group id or name")
    role: str


class InviteCreate(Input):
    role: str
    expires_in_days: int = 7
    max_uses: int = 1


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

    username: str | None = None
    password: str | None = None


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
    description: str | None = None
    vcpu: float | None = None
    ram_gb: float | None = None
    gpu_count: int | None = None
    gpu_type: str | None = None
    vram_gb: float | None = None
    units_per_second: int | None = None
    async_units_per_second: int | None = None
    platform: str | None = None
    access_tier: str | None = None
    enabled: bool | None = None
    sort_order: int | None = None


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
    name: str
    value: str


class SecretUpdate(Input):
    name: str | None = None
    value: str | None = None


# --- jobs -----------------------------------------------------------------------------------


class FileRefIn(Input):
    path: str
    sha256: str
    size: int
    var: str | None = None
    is_dir: bool = False
    executable: bool = Field(default=False, description="Restore the executable bit (e.g. ./run.sh)")


class PipOptionsIn(Input):
    index_url: str | None = None
    extra_index_urls: list[str] = Field(default_factory=list)
    trusted_hosts: list[str] = Field(default_factory=list)
    no_deps: bool = False


class PythonEnvIn(Input):
    version: str
    requirements: list[str] = Field(default_factory=list)
    pip: PipOptionsIn | None = Field(default=None, description="pip options from a requirements file")


class JobCreate(Input):
    config: str = Field(description="The config.yaml text, as written")
    name: str | None = None
    desc: str | None = None
    inputs: list[FileRefIn] = Field(default_factory=list)
    modules: list[FileRefIn] = Field(default_factory=list, description="Local Python modules (env.python)")
    python: PythonEnvIn | None = None
    env_vars: dict[str, str] = Field(
        default_factory=dict, description="Values of env.vars copied from your env"
    )
    data_ttl_days: int | None = 14


class JobFork(Input):
    args: dict[str, str] | None = None
    vars: dict[str, FileRefIn] | None = Field(default=None, description="New files for input variables")
    output_vars: dict[str, str] | None = Field(default=None, description="New paths for output variables")
    env_vars: dict[str, str] | None = None
    name: str | None = None
    desc: str | None = None
    cloud_instance_types: list[str] | None = None


class JobCancel(Input):
    graceful: bool = False


class DataTtl(Input):
    days: int | None = Field(description="Days to keep the job's data after it ends; null keeps it forever")


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

    notebook_id: str = Field(description="Path of the .ipynb in the project's storage, up to 200 characters")
    input_variables: dict[str, Any] = Field(default_factory=dict, description="Become env vars of the run")
    output_variable_names: list[str] = Field(
        default_factory=list, description="Variables whose values come back"
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
