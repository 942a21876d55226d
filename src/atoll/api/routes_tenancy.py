"""Organizations, communities and projects (spec §1)."""

from __future__ import annotations

from fastapi import APIRouter, Query

from atoll.api.bounds import MAX_ID, MAX_NAME
from atoll.api.common import (
    PageSize,
    PageToken,
    act,
    community_out,
    limits_out,
    project_out,
    restrictions_out,
)
from atoll.api.deps import CtxDep
from atoll.api.pagination import page
from atoll.api.schemas import Page
from atoll.api.schemas_tenancy import (
    BillingLink,
    CommunityCreate,
    CommunityOut,
    CommunityUpdate,
    OrganizationCreate,
    OrganizationOut,
    OrganizationUpdate,
    ProjectCreate,
    ProjectLimits,
    ProjectLimitsIn,
    ProjectOut,
    ProjectSettingsIn,
    ProjectUpdate,
    Restrictions,
    RestrictionsUpdate,
)
from atoll.domain import communities, listing, tenancy
from atoll.domain.access import Action
from atoll.errors import Invalid
from atoll.store.tables import Community, Organization, Project

router = APIRouter()


def _settings_dict(body: ProjectSettingsIn | None) -> dict[str, object]:
    return body.model_dump(by_alias=True, exclude_unset=True) if body else {}


# --- organizations --------------------------------------------------------------------------


@router.get(
    "/organizations",
    response_model=Page[OrganizationOut],
    openapi_extra=act(Action.ORG_VIEW),
    tags=["organizations"],
)
def list_organizations(
    ctx: CtxDep, page_size: int = PageSize, page_token: str | None = PageToken
) -> Page[OrganizationOut]:
    rows, nxt = page(ctx.db, listing.organizations(ctx.me), Organization, page_size, page_token)
    return Page(items=[OrganizationOut.model_validate(o) for o in rows], next_page_token=nxt)


@router.post(
    "/organizations",
    response_model=OrganizationOut,
    status_code=201,
    openapi_extra=act(Action.SYSTEM_MANAGE),
    tags=["organizations"],
)
def create_organization(body: OrganizationCreate, ctx: CtxDep) -> OrganizationOut:
    org = tenancy.create_organization(ctx.db, ctx.me, name=body.name, description=body.description)
    return ctx.commit(OrganizationOut.model_validate(org))


@router.get(
    "/organizations/{organization_id}",
    response_model=OrganizationOut,
    openapi_extra=act(Action.ORG_VIEW),
    tags=["organizations"],
)
def get_organization(organization_id: str, ctx: CtxDep) -> OrganizationOut:
    return OrganizationOut.model_validate(tenancy.get_organization(ctx.db, ctx.me, organization_id))


@router.patch(
    "/organizations/{organization_id}",
    response_model=OrganizationOut,
    openapi_extra=act(Action.ORG_UPDATE),
    tags=["organizations"],
)
def update_organization(organization_id: str, body: OrganizationUpdate, ctx: CtxDep) -> OrganizationOut:
    org = tenancy.update_organization(
        ctx.db, ctx.me, organization_id, name=body.name, description=body.description
    )
    return ctx.commit(OrganizationOut.model_validate(org))


@router.delete(
    "/organizations/{organization_id}",
    status_code=204,
    openapi_extra=act(Action.SYSTEM_MANAGE),
    tags=["organizations"],
)
def delete_organization(organization_id: str, ctx: CtxDep) -> None:
    tenancy.delete_organization(ctx.db, ctx.me, organization_id)
    ctx.commit(None)


# --- communities ----------------------------------------------------------------------------


@router.get(
    "/communities",
    response_model=Page[CommunityOut],
    openapi_extra=act(Action.COMMUNITY_VIEW),
    tags=["communities"],
)
def list_communities(
    ctx: CtxDep,
    organization_id: str | None = Query(None, alias="organizationId", max_length=MAX_ID),
    name: str | None = Query(None, max_length=MAX_NAME),
    page_size: int = PageSize,
    page_token: str | None = PageToken,
) -> Page[CommunityOut]:
    q = listing.communities(ctx.me, organization_id=organization_id, name=name)
    rows, nxt = page(ctx.db, q, Community, page_size, page_token)
    return Page(items=[community_out(c) for c in rows], next_page_token=nxt)


@router.post(
    "/communities",
    response_model=CommunityOut,
    status_code=201,
    openapi_extra=act(Action.COMMUNITY_CREATE),
    tags=["communities"],
)
def create_community(body: CommunityCreate, ctx: CtxDep) -> CommunityOut:
    c = communities.create_community(
        ctx.db,
        ctx.me,
        ctx.settings,
        organization_id=body.organization_id,
        name=body.name,
        description=body.description,
        labels=body.labels,
        zone_id=body.zone_id,
        billing_account_id=body.billing_account_id,
    )
    return ctx.commit(community_out(c))


@router.get(
    "/communities/{community_id}",
    response_model=CommunityOut,
    openapi_extra=act(Action.COMMUNITY_VIEW),
    tags=["communities"],
)
def get_community(community_id: str, ctx: CtxDep) -> CommunityOut:
    return community_out(communities.get_community(ctx.db, ctx.me, community_id))


@router.patch(
    "/communities/{community_id}",
    response_model=CommunityOut,
    openapi_extra=act(Action.COMMUNITY_UPDATE),
    tags=["communities"],
)
def update_community(community_id: str, body: CommunityUpdate, ctx: CtxDep) -> CommunityOut:
    c = communities.update_community(
        ctx.db,
        ctx.me,
        community_id,
        name=body.name,
        description=body.description,
        labels=body.labels,
        zone_id=body.zone_id,
    )
    return ctx.commit(community_out(c))


@router.delete(
    "/communities/{community_id}",
    status_code=204,
    openapi_extra=act(Action.COMMUNITY_DELETE),
    tags=["communities"],
)
def delete_community(community_id: str, ctx: CtxDep) -> None:
    communities.delete_community(ctx.db, ctx.me, community_id)
    ctx.commit(None)


@router.put(
    "/communities/{community_id}/billing-account",
    response_model=CommunityOut,
    openapi_extra=act(Action.COMMUNITY_LINK_BILLING),
    tags=["communities"],
)
def link_billing_account(community_id: str, body: BillingLink, ctx: CtxDep) -> CommunityOut:
    """Link (or with null, unlink) the billing account that pays for the community."""
    c = communities.link_billing_account(ctx.db, ctx.me, ctx.settings, community_id, body.billing_account_id)
    return ctx.commit(community_out(c))


@router.get(
    "/communities/{community_id}/restrictions",
    response_model=Restrictions,
    openapi_extra=act(Action.COMMUNITY_VIEW),
    tags=["communities"],
)
def get_restrictions(community_id: str, ctx: CtxDep) -> Restrictions:
    return restrictions_out(communities.get_community(ctx.db, ctx.me, community_id))


@router.patch(
    "/communities/{community_id}/restrictions",
    response_model=Restrictions,
    openapi_extra=act(Action.COMMUNITY_SET_RESTRICTIONS),
    tags=["communities"],
)
def set_restrictions(community_id: str, body: RestrictionsUpdate, ctx: CtxDep) -> Restrictions:
    """Allowed configurations and feature toggles (spec §7.2); community Admins only."""
    if body.allow_all_configurations and body.allowed_configurations is not None:
        raise Invalid(
            "give allowedConfigurations or allowAllConfigurations, not both", field="allowAllConfigurations"
        )
    c = communities.set_restrictions(
        ctx.db,
        ctx.me,
        community_id,
        allowed_configurations=body.allowed_configurations,
        features=body.features,
    )
    if body.allow_all_configurations:
        c = communities.clear_allowed_configurations(ctx.db, ctx.me, community_id)
    return ctx.commit(restrictions_out(c))


# --- projects -------------------------------------------------------------------------------


@router.get(
    "/projects",
    response_model=Page[ProjectOut],
    openapi_extra=act(Action.PROJECT_VIEW),
    tags=["projects"],
)
def list_projects(
    ctx: CtxDep,
    community_id: str | None = Query(None, alias="communityId", max_length=MAX_ID),
    project_name_pattern: str | None = Query(None, alias="projectNamePattern", max_length=4 * MAX_NAME),
    owned_by_id: str | None = Query(None, alias="ownedById", max_length=MAX_ID),
    page_size: int = PageSize,
    page_token: str | None = PageToken,
) -> Page[ProjectOut]:
    """Projects the caller can see; filters as DataSphere's `list` (community, name pattern, owner)."""
    q = listing.projects(
        ctx.me, community_id=community_id, name_pattern=project_name_pattern, owned_by_id=owned_by_id
    )
    rows, nxt = page(ctx.db, q, Project, page_size, page_token)
    return Page(items=[project_out(ctx.db, p) for p in rows], next_page_token=nxt)


@router.post(
    "/projects",
    response_model=ProjectOut,
    status_code=201,
    openapi_extra=act(Action.PROJECT_CREATE),
    tags=["projects"],
)
def create_project(body: ProjectCreate, ctx: CtxDep) -> ProjectOut:
    p = tenancy.create_project(
        ctx.db,
        ctx.me,
        ctx.settings,
        community_id=body.community_id,
        name=body.name,
        description=body.description,
        labels=body.labels,
        project_settings=_settings_dict(body.settings),
        limits=body.limits.model_dump(by_alias=True, exclude_unset=True) if body.limits else None,
        inventory=ctx.inventory,
    )
    return ctx.commit(project_out(ctx.db, p))


@router.get(
    "/projects/{project_id}",
    response_model=ProjectOut,
    openapi_extra=act(Action.PROJECT_VIEW),
    tags=["projects"],
)
def get_project(project_id: str, ctx: CtxDep) -> ProjectOut:
    return project_out(ctx.db, tenancy.get_project(ctx.db, ctx.me, project_id))


@router.patch(
    "/projects/{project_id}",
    response_model=ProjectOut,
    openapi_extra=act(Action.PROJECT_UPDATE),
    tags=["projects"],
)
def update_project(project_id: str, body: ProjectUpdate, ctx: CtxDep) -> ProjectOut:
    p = tenancy.update_project(
        ctx.db,
        ctx.me,
        project_id,
        name=body.name,
        description=body.description,
        labels=body.labels,
        project_settings=_settings_dict(body.settings),
    )
    return ctx.commit(project_out(ctx.db, p))


@router.delete(
    "/projects/{project_id}", status_code=204, openapi_extra=act(Action.PROJECT_DELETE), tags=["projects"]
)
def delete_project(project_id: str, ctx: CtxDep) -> None:
    tenancy.delete_project(ctx.db, ctx.me, project_id)
    ctx.commit(None)


@router.get(
    "/projects/{project_id}/limits",
    response_model=ProjectLimits,
    openapi_extra=act(Action.PROJECT_VIEW_LIMITS),
    tags=["projects"],
)
def get_limits(project_id: str, ctx: CtxDep) -> ProjectLimits:
    """Balance and unit limits; viewing needs project Editor (spec §7.2)."""
    return limits_out(tenancy.get_limits(ctx.db, ctx.me, project_id))


@router.patch(
    "/projects/{project_id}/limits",
    response_model=ProjectLimits,
    openapi_extra=act(Action.PROJECT_SET_LIMITS),
    tags=["projects"],
)
def set_limits(project_id: str, body: ProjectLimitsIn, ctx: CtxDep) -> ProjectLimits:
    """Set balance and unit limits (null removes a limit); needs project Admin (spec §7.2)."""
    p = tenancy.set_limits(ctx.db, ctx.me, project_id, body.model_dump(by_alias=True, exclude_unset=True))
    return ctx.commit(limits_out(p))
