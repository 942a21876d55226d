"""Helpers shared by the routers: the access tag every route carries, and row → body converters."""

from __future__ import annotations

from typing import Any

from fastapi import Query
from sqlalchemy.orm import Session

from atoll.api.bounds import MAX_ID, MAX_PAGE_TOKEN
from atoll.api.schemas_access import AccessBindingOut, InviteOut
from atoll.api.schemas_auth import TokenOut
from atoll.api.schemas_catalog import ConfigurationOut
from atoll.api.schemas_tenancy import CommunityOut, ProjectLimits, ProjectOut, ProjectSettings, Restrictions
from atoll.capacity import Inventory
from atoll.domain import auth, members
from atoll.domain.access import ROLE_IDS, Action, ResourceType
from atoll.domain.catalog import availability
from atoll.domain.communities import restrictions_of
from atoll.domain.validation import format_duration
from atoll.store.tables import AccessBinding, ApiToken, Community, Configuration, Invite, Project

ACTION_KEY = "x-atoll-action"
PUBLIC = "public"  # no sign-in needed
SELF = "self"  # any signed-in user, acting on their own account


def act(action: Action | str) -> dict[str, Any]:
    """Declare the action a route performs; the role-matrix test reads it from the OpenAPI."""
    return {ACTION_KEY: action.value if isinstance(action, Action) else action}


PageSize = Query(100, alias="pageSize", ge=1, le=1000)
PageToken = Query(None, alias="pageToken", max_length=MAX_PAGE_TOKEN)
OrgFilter = Query(None, alias="organizationId", max_length=MAX_ID, description="Only this organization's")


def token_out(tok: ApiToken) -> TokenOut:
    return TokenOut.model_validate(
        {
            **{
                k: getattr(tok, k)
                for k in ("id", "name", "prefix", "created_at", "expires_at", "last_used_at", "project_id")
            },
            "state": auth.token_state(tok),
        }
    )


def project_out(db: Session, p: Project) -> ProjectOut:
    community = db.get(Community, p.community_id)
    return ProjectOut(
        id=p.id,
        community_id=p.community_id,
        community_name=community.name if community else "",
        name=p.name,
        description=p.description,
        labels=p.labels or {},
        settings=ProjectSettings(
            default_configuration=p.default_configuration,
            default_environment=p.default_environment,
            active_image_id=p.active_image_id,
            vm_inactivity_timeout=format_duration(p.vm_inactivity_timeout_s),
            stale_exec_timeout_mode=p.stale_exec_timeout_mode,
            ide=p.ide,
        ),
        created_at=p.created_at,
        created_by_id=p.created_by,
    )


def limits_out(p: Project) -> ProjectLimits:
    return ProjectLimits(
        balance=p.balance,
        max_units_per_hour=p.max_units_per_hour,
        max_units_per_execution=p.max_units_per_execution,
    )


def community_out(c: Community) -> CommunityOut:
    return CommunityOut.model_validate(c)


def restrictions_out(c: Community) -> Restrictions:
    return Restrictions.model_validate(restrictions_of(c))


def binding_out(db: Session, b: AccessBinding) -> AccessBindingOut:
    return AccessBindingOut(
        id=b.id,
        resource_type=b.resource_type,
        resource_id=b.resource_id,
        subject_type=b.subject_type,
        subject_id=b.subject_id,
        subject_name=members.subject_name(db, b),
        role=b.role,
        role_id=ROLE_IDS.get((ResourceType(b.resource_type), b.role), b.role),
        created_at=b.created_at,
    )


def invite_out(inv: Invite) -> InviteOut:
    return InviteOut(
        id=inv.id,
        resource_type=inv.resource_type,
        resource_id=inv.resource_id,
        role=inv.role,
        expires_at=inv.expires_at,
        max_uses=inv.max_uses,
        uses=inv.uses,
        state=members.invite_state(inv),
        created_at=inv.created_at,
    )


def configuration_out(
    cfg: Configuration, inv: Inventory, overcommit: float, community: Community | None = None
) -> ConfigurationOut:
    av = availability(cfg, inv, overcommit)
    allowed = None
    if community is not None:
        allowed_list = restrictions_of(community)["allowedConfigurations"]
        allowed = allowed_list is None or cfg.name in allowed_list
    return ConfigurationOut(
        name=cfg.name,
        description=cfg.description,
        vcpu=cfg.vcpu,
        ram_gb=cfg.ram_gb,
        gpu_count=cfg.gpu_count,
        gpu_type=cfg.gpu_type,
        vram_gb=cfg.vram_gb,
        units_per_second=cfg.units_per_second,
        async_units_per_second=cfg.async_units_per_second,
        units_per_hour=cfg.units_per_second * 3600,
        platform=cfg.platform,
        access_tier=cfg.access_tier,
        enabled=cfg.enabled,
        available=av.available,
        availability_reason=av.reason,
        allowed=allowed,
    )
