"""sso_and_audit: identity providers, the accounts and sign-ins they vouch for, sessions, tokens and
group memberships that came through them, and the audit log (issue 19)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 10:15:16.867086
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_records",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("organization_id", sa.String(length=32), nullable=True),
        sa.Column("actor_id", sa.String(length=32), nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("route", sa.String(length=256), nullable=False),
        sa.Column("resource_type", sa.String(length=32), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("result", sa.String(length=16), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("detail", sa.String(length=512), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_records_action"), ["action"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_records_actor_id"), ["actor_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_records_created_at"), ["created_at"], unique=False)
        batch_op.create_index(
            "ix_audit_records_org_created", ["organization_id", "created_at", "id"], unique=False
        )

    op.create_table(
        "identity_providers",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("display_name", sa.String(length=128), nullable=False),
        sa.Column("issuer", sa.String(length=512), nullable=False),
        sa.Column("client_id", sa.String(length=255), nullable=False),
        sa.Column("client_secret", sa.LargeBinary(), nullable=False),
        sa.Column("scopes", sa.String(length=512), nullable=False),
        sa.Column("organization_id", sa.String(length=32), nullable=False),
        sa.Column("groups_claim", sa.String(length=128), nullable=False),
        sa.Column("admin_groups", sa.JSON(), nullable=False),
        sa.Column("username_claim", sa.String(length=128), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("managed_by", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    with op.batch_alter_table("identity_providers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_identity_providers_created_at"), ["created_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_identity_providers_organization_id"), ["organization_id"], unique=False
        )

    op.create_table(
        "external_identities",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("provider_id", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("groups", sa.JSON(), nullable=False),
        sa.Column("last_sign_in_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["provider_id"], ["identity_providers.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("provider_id", "subject"),
    )
    with op.batch_alter_table("external_identities", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_external_identities_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_external_identities_user_id"), ["user_id"], unique=False)

    op.create_table(
        "sso_sign_ins",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("browser_hash", sa.String(length=64), nullable=False),
        sa.Column("provider_id", sa.String(length=32), nullable=False),
        sa.Column("nonce", sa.String(length=128), nullable=False),
        sa.Column("code_verifier", sa.LargeBinary(), nullable=False),
        sa.Column("redirect_uri", sa.String(length=1024), nullable=False),
        sa.Column("next_url", sa.String(length=1024), nullable=False),
        sa.Column("cli_port", sa.Integer(), nullable=True),
        sa.Column("cli_state", sa.String(length=128), nullable=False),
        sa.Column("cli_challenge", sa.String(length=128), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=True),
        sa.Column("cli_code_hash", sa.String(length=64), nullable=True),
        sa.Column("confirm_hash", sa.String(length=64), nullable=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["provider_id"], ["identity_providers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("cli_code_hash"),
        sa.UniqueConstraint("confirm_hash"),
        sa.UniqueConstraint("state_hash"),
    )
    with op.batch_alter_table("sso_sign_ins", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sso_sign_ins_created_at"), ["created_at"], unique=False)

    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("provider_id", sa.String(length=32), nullable=True))

    with op.batch_alter_table("group_members", schema=None) as batch_op:
        batch_op.add_column(sa.Column("provider_id", sa.String(length=32), nullable=True))

    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("provider_id", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.drop_column("provider_id")

    with op.batch_alter_table("group_members", schema=None) as batch_op:
        batch_op.drop_column("provider_id")

    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("provider_id")

    with op.batch_alter_table("sso_sign_ins", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sso_sign_ins_created_at"))

    op.drop_table("sso_sign_ins")
    with op.batch_alter_table("external_identities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_external_identities_user_id"))
        batch_op.drop_index(batch_op.f("ix_external_identities_created_at"))

    op.drop_table("external_identities")
    with op.batch_alter_table("identity_providers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_providers_organization_id"))
        batch_op.drop_index(batch_op.f("ix_identity_providers_created_at"))

    op.drop_table("identity_providers")
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_records_org_created")
        batch_op.drop_index(batch_op.f("ix_audit_records_created_at"))
        batch_op.drop_index(batch_op.f("ix_audit_records_actor_id"))
        batch_op.drop_index(batch_op.f("ix_audit_records_action"))

    op.drop_table("audit_records")
