"""Atoll's database tables (SQLAlchemy 2), one module per area; import them from here.

base.py       the declarative base, timestamps, ids
identity.py   users, sign-in, tenancy, roles, the catalogue, usage, secrets
compute.py    workloads, jobs, notebook servers and runs
deploy.py     models, datasets, nodes, instances, aliases, metrics
environments.py  built-in and projects' environments
images.py     projects' Docker images
sso.py        identity providers, external identities, SSO sign-ins, the audit log
"""

from atoll.store.tables.base import Base, Timestamped, as_utc, new_id, utcnow
from atoll.store.tables.compute import (
    Blob,
    FileError,
    Job,
    JobFiles,
    JobPython,
    MountSpec,
    NotebookRun,
    NotebookServer,
    OutputDataset,
    ProjectBlob,
    PythonEnvSpec,
    RunIdentity,
    StoredFile,
    WorkloadRow,
    WorkloadSpec,
)
from atoll.store.tables.deploy import Alias, Dataset, DeployMetric, Model, Node, NodeInstance
from atoll.store.tables.environments import EnvironmentRow
from atoll.store.tables.identity import (
    AccessBinding,
    ApiToken,
    BillingAccount,
    Community,
    Configuration,
    Group,
    GroupMember,
    Invite,
    Organization,
    Project,
    Secret,
    SignInThrottle,
    UsageRecord,
    User,
    WebSession,
)
from atoll.store.tables.images import ProjectImage
from atoll.store.tables.sso import AuditRecord, ExternalIdentity, IdentityProvider, SsoSignIn

__all__ = [
    "AccessBinding",
    "Alias",
    "ApiToken",
    "AuditRecord",
    "Base",
    "BillingAccount",
    "Blob",
    "Community",
    "Configuration",
    "Dataset",
    "DeployMetric",
    "EnvironmentRow",
    "ExternalIdentity",
    "FileError",
    "Group",
    "GroupMember",
    "IdentityProvider",
    "Invite",
    "Job",
    "JobFiles",
    "JobPython",
    "Model",
    "MountSpec",
    "Node",
    "NodeInstance",
    "NotebookRun",
    "NotebookServer",
    "Organization",
    "OutputDataset",
    "Project",
    "ProjectBlob",
    "ProjectImage",
    "PythonEnvSpec",
    "RunIdentity",
    "Secret",
    "SignInThrottle",
    "SsoSignIn",
    "StoredFile",
    "Timestamped",
    "UsageRecord",
    "User",
    "WebSession",
    "WorkloadRow",
    "WorkloadSpec",
    "as_utc",
    "new_id",
    "utcnow",
]
