"""Single sign-on and the audit log: identity providers, the accounts they vouch for, sign-ins in
flight, and the record of who did what."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from atoll.store.tables.base import Base, Timestamped, new_id, utcnow


class IdentityProvider(Timestamped, Base):
    """An OpenID Connect provider users sign in with (docs/admin.md "Single sign-on")."""

    __tablename__ = "identity_providers"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("idp"))
    # In URLs (/login/sso/<name>) and `atoll login --sso <name>`.
    name: Mapped[str] = mapped_column(String(63), unique=True)
    display_name: Mapped[str] = mapped_column(String(128), default="")
    issuer: Mapped[str] = mapped_column(String(512))
    client_id: Mapped[str] = mapped_column(String(255))
    client_secret: Mapped[bytes] = mapped_column(LargeBinary, default=b"")  # SecretBox ciphertext
    scopes: Mapped[str] = mapped_column(String(512), default="openid profile email")
    # Users created at their first sign-in become members of this organization.
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    # The claim whose values name the user's groups ("" : no group sync).
    groups_claim: Mapped[str] = mapped_column(String(128), default="groups")
    # Members of any of these provider groups are the organization's admins.
    admin_groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    username_claim: Mapped[str] = mapped_column(String(128), default="preferred_username")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # "settings": defined by ATOLL_SSO_PROVIDERS, re-applied at every start; "api": by an admin.
    managed_by: Mapped[str] = mapped_column(String(16), default="api")


class ExternalIdentity(Timestamped, Base):
    """A provider's subject (its `sub`) and the Atoll user it signs in as."""

    __tablename__ = "external_identities"
    __table_args__ = (UniqueConstraint("provider_id", "subject"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("xid"))
    provider_id: Mapped[str] = mapped_column(ForeignKey("identity_providers.id", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # The provider groups of the last sign-in, as the claim named them.
    groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(default=None)


class SsoSignIn(Base):
    """A sign-in on its way through the provider: the state, nonce and PKCE verifier it must come
    back with. Used once; a callback for a used or expired one is refused."""

    __tablename__ = "sso_sign_ins"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("ssi"))
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The sha256 of a cookie set in the browser that started it: the answer is taken only from
    # that browser (someone else's callback link does not sign you in as them).
    browser_hash: Mapped[str] = mapped_column(String(64), default="")
    provider_id: Mapped[str] = mapped_column(ForeignKey("identity_providers.id", ondelete="CASCADE"))
    nonce: Mapped[str] = mapped_column(String(128))
    code_verifier: Mapped[bytes] = mapped_column(LargeBinary)  # SecretBox ciphertext
    redirect_uri: Mapped[str] = mapped_column(String(1024))
    next_url: Mapped[str] = mapped_column(String(1024), default="/")
    # For `atoll login --sso`: the CLI's loopback port, its state, and the sha256 of its verifier.
    cli_port: Mapped[int | None] = mapped_column(Integer, default=None)
    cli_state: Mapped[str] = mapped_column(String(128), default="")
    cli_challenge: Mapped[str] = mapped_column(String(128), default="")
    # Set once the provider came back: the user, and (for the CLI) the hash of the one-time code
    # the CLI trades for a token.
    user_id: Mapped[str | None] = mapped_column(String(32), default=None)
    cli_code_hash: Mapped[str | None] = mapped_column(String(64), default=None, unique=True)
    # For the CLI: the person confirms on an Atoll page that the CLI on their machine may sign in
    # (a link with someone else's CLI port and challenge must not hand them a token).
    confirm_hash: Mapped[str | None] = mapped_column(String(64), default=None, unique=True)
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    expires_at: Mapped[datetime] = mapped_column()


class AuditRecord(Base):
    """One thing someone did (or tried): who, from where, what action on which resource, the
    result, when. Never a secret value or a token (domain/audit.py)."""

    __tablename__ = "audit_records"
    __table_args__ = (Index("ix_audit_records_org_created", "organization_id", "created_at", "id"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("aud"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # None: not tied to one organization (a password sign-in, an own token): shown to the
    # organizations the actor belongs to.
    organization_id: Mapped[str | None] = mapped_column(String(32), default=None)
    actor_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    actor: Mapped[str] = mapped_column(String(128), default="")  # username, or the name tried
    # How the actor was known: "session", "token", "sso", "password", "workload", "" (anonymous).
    via: Mapped[str] = mapped_column(String(16), default="")
    address: Mapped[str] = mapped_column(String(64), default="")
    action: Mapped[str] = mapped_column(String(64), index=True)
    route: Mapped[str] = mapped_column(String(256), default="")  # "POST /api/v1/projects/{project_id}"
    resource_type: Mapped[str] = mapped_column(String(32), default="")
    resource_id: Mapped[str] = mapped_column(String(64), default="")
    result: Mapped[str] = mapped_column(String(16))  # "success" | "denied" | "failed"
    status: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[str] = mapped_column(String(512), default="")
