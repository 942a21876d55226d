"""Billing accounts, the configuration catalogue, and what this installation can do."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query

from atoll.api.bounds import MAX_ID
from atoll.api.common import SELF, PageSize, PageToken, act, configuration_out
from atoll.api.deps import CtxDep
from atoll.api.pagination import page
from atoll.api.schemas import Page
from atoll.api.schemas_catalog import ConfigurationIn, ConfigurationOut
from atoll.api.schemas_tenancy import BillingAccountCreate, BillingAccountOut, BillingAccountUpdate, UsageOut
from atoll.domain import billing, catalog, communities, listing, tenancy
from atoll.domain.access import Action
from atoll.errors import Invalid
from atoll.store.tables import BillingAccount, Community

router = APIRouter()


# --- billing accounts -----------------------------------------------------------------------


@router.get(
    "/billing-accounts",
    response_model=Page[BillingAccountOut],
    openapi_extra=act(Action.BILLING_ACCOUNT_VIEW),
    tags=["billing"],
)
def list_billing_accounts(
    ctx: CtxDep,
    organization_id: str | None = Query(None, alias="organizationId", max_length=MAX_ID),
    page_size: int = PageSize,
    page_token: str | None = PageToken,
) -> Page[BillingAccountOut]:
    q = listing.billing_accounts(ctx.me, organization_id=organization_id)
    rows, nxt = page(ctx.db, q, BillingAccount, page_size, page_token)
    return Page(items=[BillingAccountOut.model_validate(b) for b in rows], next_page_token=nxt)


@router.post(
    "/billing-accounts",
    response_model=BillingAccountOut,
    status_code=201,
    openapi_extra=act(Action.BILLING_ACCOUNT_CREATE),
    tags=["billing"],
)
def create_billing_account(body: BillingAccountCreate, ctx: CtxDep) -> BillingAccountOut:
    ba = billing.create_billing_account(
        ctx.db,
        ctx.me,
        organization_id=body.organization_id,
        name=body.name,
        description=body.description,
        currency=body.currency,
        unit_price=body.unit_price,
    )
    return ctx.commit(BillingAccountOut.model_validate(ba))


@router.get(
    "/billing-accounts/{billing_account_id}",
    response_model=BillingAccountOut,
    openapi_extra=act(Action.BILLING_ACCOUNT_VIEW),
    tags=["billing"],
)
def get_billing_account(billing_account_id: str, ctx: CtxDep) -> BillingAccountOut:
    return BillingAccountOut.model_validate(billing.get_billing_account(ctx.db, ctx.me, billing_account_id))


@router.patch(
    "/billing-accounts/{billing_account_id}",
    response_model=BillingAccountOut,
    openapi_extra=act(Action.BILLING_ACCOUNT_UPDATE),
    tags=["billing"],
)
def update_billing_account(
    billing_account_id: str, body: BillingAccountUpdate, ctx: CtxDep
) -> BillingAccountOut:
    ba = billing.update_billing_account(
        ctx.db,
        ctx.me,
        billing_account_id,
        name=body.name,
        description=body.description,
        unit_price=body.unit_price,
        active=body.active,
    )
    return ctx.commit(BillingAccountOut.model_validate(ba))


@router.delete(
    "/billing-accounts/{billing_account_id}",
    status_code=204,
    openapi_extra=act(Action.BILLING_ACCOUNT_UPDATE),
    tags=["billing"],
)
def delete_billing_account(billing_account_id: str, ctx: CtxDep) -> None:
    billing.delete_billing_account(ctx.db, ctx.me, billing_account_id)
    ctx.commit(None)


@router.get(
    "/billing-accounts/{billing_account_id}/usage",
    response_model=UsageOut,
    openapi_extra=act(Action.BILLING_ACCOUNT_VIEW),
    tags=["billing"],
)
def billing_account_usage(
    billing_account_id: str, ctx: CtxDep, since: datetime | None = None, until: datetime | None = None
) -> UsageOut:
    """Units used by the communities this account pays for, over a period, and their cost."""
    ba = billing.get_billing_account(ctx.db, ctx.me, billing_account_id)
    units = billing.usage_units(ctx.db, billing_account_id=ba.id, since=since, until=until)
    return UsageOut(
        units=units, cost=billing.cost_of(units, ba), currency=ba.currency, since=since, until=until
    )


# --- configurations -------------------------------------------------------------------------


@router.get(
    "/configurations",
    response_model=list[ConfigurationOut],
    openapi_extra=act(Action.CATALOG_VIEW),
    tags=["configurations"],
)
def list_configurations(
    ctx: CtxDep,
    community_id: str | None = Query(
        None, alias="communityId", max_length=MAX_ID, description="Mark which ones the community allows"
    ),
    project_id: str | None = Query(
        None,
        alias="projectId",
        max_length=MAX_ID,
        description="Mark which ones the project's community allows",
    ),
) -> list[ConfigurationOut]:
    """The catalogue with each configuration's availability on this installation."""
    community: Community | None = None
    if project_id:
        project = tenancy.get_project(ctx.db, ctx.me, project_id)
        community = ctx.db.get(Community, project.community_id)
    elif community_id:
        community = communities.get_community(ctx.db, ctx.me, community_id)
    inv = ctx.inventory
    over = ctx.settings.pool_overcommit
    return [configuration_out(c, inv, over, community) for c in catalog.list_configurations(ctx.db, ctx.me)]


@router.get(
    "/configurations/{name}",
    response_model=ConfigurationOut,
    openapi_extra=act(Action.CATALOG_VIEW),
    tags=["configurations"],
)
def get_configuration(name: str, ctx: CtxDep) -> ConfigurationOut:
    cfg = catalog.get_configuration(ctx.db, ctx.me, name)
    return configuration_out(cfg, ctx.inventory, ctx.settings.pool_overcommit)


@router.put(
    "/configurations/{name}",
    response_model=ConfigurationOut,
    openapi_extra=act(Action.SYSTEM_MANAGE),
    tags=["configurations"],
)
def put_configuration(name: str, body: ConfigurationIn, ctx: CtxDep) -> ConfigurationOut:
    """Create or change a catalogue entry (installation admins)."""
    values = body.model_dump(by_alias=True, exclude_unset=True)
    for key, value in values.items():
        if value is None and key != "asyncUnitsPerSecond":
            raise Invalid(f"{key} cannot be null", field=key)
    cfg = catalog.put_configuration(ctx.db, ctx.me, name, values)
    return ctx.commit(configuration_out(cfg, ctx.inventory, ctx.settings.pool_overcommit))


@router.delete(
    "/configurations/{name}",
    status_code=204,
    openapi_extra=act(Action.SYSTEM_MANAGE),
    tags=["configurations"],
)
def delete_configuration(name: str, ctx: CtxDep) -> None:
    catalog.delete_configuration(ctx.db, ctx.me, name)
    ctx.commit(None)


# --- system ---------------------------------------------------------------------------------


@router.get("/system/capacity", openapi_extra=act(SELF), tags=["system"])
def capacity(ctx: CtxDep) -> dict[str, object]:
    """The compute pool: cores, memory and GPUs this installation hands out."""
    ctx.me  # noqa: B018 - signed-in callers only
    inv = ctx.inventory
    return {
        "cpus": inv.cpus,
        "memoryGb": inv.memory_gb,
        "overcommit": ctx.settings.pool_overcommit,
        "gpus": [{"index": g.index, "name": g.name, "memoryMb": g.memory_mb} for g in inv.gpus],
        "gpuDetection": {"source": inv.gpu_source, "note": inv.gpu_error},
    }


# --- usage ----------------------------------------------------------------------------------


def _usage(
    ctx: CtxDep, units: int, ba_id: str | None, since: datetime | None, until: datetime | None
) -> UsageOut:
    ba = ctx.db.get(BillingAccount, ba_id) if ba_id else None
    cost = billing.cost_of(units, ba) if ba else None
    return UsageOut(units=units, cost=cost, currency=ba.currency if ba else None, since=since, until=until)


@router.get(
    "/projects/{project_id}/usage",
    response_model=UsageOut,
    openapi_extra=act(Action.PROJECT_VIEW_USAGE),
    tags=["billing"],
)
def project_usage(
    project_id: str, ctx: CtxDep, since: datetime | None = None, until: datetime | None = None
) -> UsageOut:
    """Units the project's workloads used over a period, priced by its community's billing account."""
    project = tenancy.get_project(ctx.db, ctx.me, project_id, Action.PROJECT_VIEW_USAGE)
    community = ctx.db.get(Community, project.community_id)
    units = billing.usage_units(ctx.db, project_id=project.id, since=since, until=until)
    return _usage(ctx, units, community.billing_account_id if community else None, since, until)


@router.get(
    "/communities/{community_id}/usage",
    response_model=UsageOut,
    openapi_extra=act(Action.COMMUNITY_VIEW_USAGE),
    tags=["billing"],
)
def community_usage(
    community_id: str, ctx: CtxDep, since: datetime | None = None, until: datetime | None = None
) -> UsageOut:
    """Units all of the community's projects used over a period."""
    community = communities.get_community(ctx.db, ctx.me, community_id, Action.COMMUNITY_VIEW_USAGE)
    units = billing.usage_units(ctx.db, community_id=community.id, since=since, until=until)
    return _usage(ctx, units, community.billing_account_id, since, until)
