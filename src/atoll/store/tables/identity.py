"""Who and where: users, sign-in, organizations, communities, projects, roles, invites, the
catalogue of configurations, usage and secrets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from atoll.store.tables.base import Base, Timestamped, new_id, utcnow


class User(Timestamped, Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("usr"))
    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(254), default="")
    display_name: Mapped[str] = mapped_column(String(128), default="")
    password_hash: Mapped[str] = mapped_column(String(255), default="")
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)


class WebSession(Timestamped, Base):
    """A browser session; the cookie holds a random token, the table only its hash."""

    __tablename__ = "web_sessions"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("ses"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column()
    # Started by a sign-in through this identity provider: ended when an admin signs the user out
    # of SSO.
    provider_id: Mapped[str | None] = mapped_column(String(32), default=None)


class ApiToken(Timestamped, Base):
    """A personal API token. Shown once; only its sha256 is stored."""

    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("tok"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    # Set: the token opens this project's JupyterLab only (an external IDE's link), never the API,
    # the web UI or an alias.
    project_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    # Issued through this identity provider (`atoll login --sso`): revoked with the SSO sign-out.
    provider_id: Mapped[str | None] = mapped_column(String(32), default=None)


class SignInThrottle(Base):
    """Recent failed sign-ins of one account name or one client address, and its lockout
    (domain/throttle.py). In the database so that limits hold across restarts and processes."""

    __tablename__ = "signin_throttles"
    scope: Mapped[str] = mapped_column(String(16), primary_key=True)  # "account" | "address"
    subject: Mapped[str] = mapped_column(String(128), primary_key=True)  # username | address
    failures: Mapped[int] = mapped_column(Integer, default=0)  # in the window from window_start
    window_start: Mapped[datetime] = mapped_column()
    locked_until: Mapped[datetime | None] = mapped_column(default=None)
    lockouts: Mapped[int] = mapped_column(Integer, default=0)  # in a row: each one lasts longer
    updated_at: Mapped[datetime] = mapped_column(index=True)


class Organization(Timestamped, Base):
    __tablename__ = "organizations"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("org"))
    name: Mapped[str] = mapped_column(String(63), unique=True)
    description: Mapped[str] = mapped_column(String(256), default="")


class Group(Timestamped, Base):
    """A named set of users of one organization; roles can be granted to it."""

    __tablename__ = "groups"
    __table_args__ = (UniqueConstraint("organization_id", "name"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("grp"))
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(63))
    description: Mapped[str] = mapped_column(String(256), default="")


class GroupMember(Timestamped, Base):
    __tablename__ = "group_members"
    group_id: Mapped[str] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    # Set: the membership follows this identity provider's group claim (added and removed at each
    # sign-in); None: an admin added it by hand.
    provider_id: Mapped[str | None] = mapped_column(String(32), default=None)


class BillingAccount(Timestamped, Base):
    """Pays for the compute of the communities linked to it (spec §7)."""

    __tablename__ = "billing_accounts"
    __table_args__ = (UniqueConstraint("organization_id", "name"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("bil"))
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(63))
    description: Mapped[str] = mapped_column(String(256), default="")
    currency: Mapped[str] = mapped_column(String(8), default="USD")
    # Price of one unit (1 vCPU-second) in `currency`; DataSphere: $0.0000096.
    unit_price: Mapped[float] = mapped_column(Float, default=0.0000096)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Community(Timestamped, Base):
    __tablename__ = "communities"
    __table_args__ = (UniqueConstraint("organization_id", "name"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("com"))
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(63))
    description: Mapped[str] = mapped_column(String(256), default="")
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    zone_id: Mapped[str] = mapped_column(String(63))
    billing_account_id: Mapped[str | None] = mapped_column(
        ForeignKey("billing_accounts.id", ondelete="SET NULL"), default=None, index=True
    )
    # {"allowedConfigurations": [...] | None, "features": {name: bool}}
    restrictions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)


class Project(Timestamped, Base):
    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("community_id", "name"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("prj"))
    community_id: Mapped[str] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(63))
    description: Mapped[str] = mapped_column(String(256), default="")
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    default_configuration: Mapped[str | None] = mapped_column(String(32), default=None)
    # The environment its notebooks, jobs without env.python and nodes run in: a built-in one or
    # the project's own, by name; None: the installation's default built-in one.
    default_environment: Mapped[str | None] = mapped_column(String(63), default=None)
    # The project's Docker image its notebooks run in (spec §4.3 "Activate"); None: the environment.
    active_image_id: Mapped[str | None] = mapped_column(String(32), default=None)
    vm_inactivity_timeout_s: Mapped[int] = mapped_column(Integer, default=3 * 3600)
    stale_exec_timeout_mode: Mapped[str] = mapped_column(String(16), default="NO_TIMEOUT")
    ide: Mapped[str] = mapped_column(String(16), default="JUPYTER_LAB")
    # Limits in units; None means "no limit".
    balance: Mapped[int | None] = mapped_column(BigInteger, default=None)
    max_units_per_hour: Mapped[int | None] = mapped_column(BigInteger, default=None)
    max_units_per_execution: Mapped[int | None] = mapped_column(BigInteger, default=None)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)


class AccessBinding(Timestamped, Base):
    """A role on a resource granted to a user or a group. The access module reads only these."""

    __tablename__ = "access_bindings"
    __table_args__ = (UniqueConstraint("resource_type", "resource_id", "subject_type", "subject_id", "role"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("acb"))
    resource_type: Mapped[str] = mapped_column(String(32), index=True)
    resource_id: Mapped[str] = mapped_column(String(32), index=True)
    subject_type: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[str] = mapped_column(String(32), index=True)
    role: Mapped[str] = mapped_column(String(32))
    created_by: Mapped[str | None] = mapped_column(String(32), default=None)


class Invite(Timestamped, Base):
    """An invite link to a community or project: whoever accepts it gets `role` there."""

    __tablename__ = "invites"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("inv"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    resource_type: Mapped[str] = mapped_column(String(32))
    resource_id: Mapped[str] = mapped_column(String(32), index=True)
    role: Mapped[str] = mapped_column(String(32))
    created_by: Mapped[str | None] = mapped_column(String(32), default=None)
    expires_at: Mapped[datetime] = mapped_column()
    max_uses: Mapped[int] = mapped_column(Integer, default=1)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class Configuration(Base):
    """A compute configuration of the catalogue (spec §3.1)."""

    __tablename__ = "configurations"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    description: Mapped[str] = mapped_column(String(256), default="")
    vcpu: Mapped[float] = mapped_column(Float)
    ram_gb: Mapped[float] = mapped_column(Float)
    gpu_count: Mapped[int] = mapped_column(Integer, default=0)
    gpu_type: Mapped[str] = mapped_column(String(32), default="")
    vram_gb: Mapped[float] = mapped_column(Float, default=0)
    units_per_second: Mapped[int] = mapped_column(Integer)
    async_units_per_second: Mapped[int | None] = mapped_column(Integer, default=None)
    platform: Mapped[str] = mapped_column(String(64), default="")
    # "everyone", "deposit" (^1), "business" (^2), "local" (laptop preset)
    access_tier: Mapped[str] = mapped_column(String(16), default="everyone")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)


class UsageRecord(Base):
    """Units consumed by one workload over one interval; metering appends, reports sum."""

    __tablename__ = "usage_records"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    community_id: Mapped[str] = mapped_column(String(32), index=True)
    billing_account_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    workload_id: Mapped[str] = mapped_column(String(64), index=True)
    configuration: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column()
    ended_at: Mapped[datetime] = mapped_column()
    seconds: Mapped[int] = mapped_column(Integer)
    units: Mapped[int] = mapped_column(BigInteger)
    note: Mapped[str] = mapped_column(Text, default="")


class Secret(Base):
    """A project secret: the value is encrypted at rest and never returned by the API."""

    __tablename__ = "secrets"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("sec"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(63))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_by: Mapped[str | None] = mapped_column(String(32), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
