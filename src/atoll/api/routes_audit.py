"""The audit log of an organization: a filtered, cursor-paged list and a JSON Lines export."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import StreamingResponse

from atoll.api.bounds import MAX_ID
from atoll.api.common import PageSize, PageToken, act
from atoll.api.deps import Ctx, CtxDep
from atoll.api.pagination import page
from atoll.api.schemas import Page
from atoll.api.schemas_sso import AuditRecordOut
from atoll.domain import access, audit, tenancy
from atoll.domain.access import Action
from atoll.store.db import Database
from atoll.store.tables import AuditRecord

router = APIRouter()

Actor = Query(None, max_length=128, description="A user's id or username")
ActionFilter = Query(None, alias="action", max_length=64, description="e.g. sign_in, create_project")
ResourceTypeFilter = Query(None, alias="resourceType", max_length=32)
ResourceIdFilter = Query(None, alias="resourceId", max_length=MAX_ID)
ResultFilter = Query(None, max_length=16, description="success, denied or failed")
Since = Query(None, description="Records at or after this time (ISO 8601)")
Until = Query(None, description="Records before this time (ISO 8601)")


def _filters(
    actor: str | None = Actor,
    action: str | None = ActionFilter,
    resource_type: str | None = ResourceTypeFilter,
    resource_id: str | None = ResourceIdFilter,
    result: str | None = ResultFilter,
    since: datetime | None = Since,
    until: datetime | None = Until,
) -> audit.Filters:
    """The filters every audit list and export takes, as query parameters."""
    return audit.Filters(actor, action, resource_type, resource_id, result, since, until)


FiltersDep = Annotated[audit.Filters, Depends(_filters)]


@router.get(
    "/organizations/{org_id}/audit-records",
    response_model=Page[AuditRecordOut],
    openapi_extra=act(Action.ORG_VIEW_AUDIT),
    tags=["audit"],
)
def list_audit_records(
    ctx: CtxDep,
    filters: FiltersDep,
    org_id: str = Path(max_length=MAX_ID),
    page_size: int = PageSize,
    page_token: str | None = PageToken,
) -> Page[AuditRecordOut]:
    """Who did what in the organization, newest first."""
    org = tenancy.get_organization(ctx.db, ctx.me, org_id, Action.ORG_VIEW_AUDIT)
    return _page(ctx, org.id, filters, page_size, page_token)


def _page(
    ctx: Ctx, org_id: str | None, filters: audit.Filters, page_size: int, page_token: str | None
) -> Page[AuditRecordOut]:
    rows, nxt = page(
        ctx.db, audit.query(org_id, filters), AuditRecord, page_size, page_token, newest_first=True
    )
    return Page(items=[AuditRecordOut.model_validate(audit.as_dict(r)) for r in rows], next_page_token=nxt)


@router.get(
    "/audit-records",
    response_model=Page[AuditRecordOut],
    openapi_extra=act(Action.SYSTEM_MANAGE),
    tags=["audit"],
)
def list_all_audit_records(
    ctx: CtxDep,
    filters: FiltersDep,
    page_size: int = PageSize,
    page_token: str | None = PageToken,
) -> Page[AuditRecordOut]:
    """Every record of the installation, newest first, those of no organization included (a
    failed sign-in as an unknown name): installation admins."""
    access.authorize(ctx.db, ctx.me, Action.SYSTEM_MANAGE)
    return _page(ctx, None, filters, page_size, page_token)


@router.get(
    "/organizations/{org_id}/audit-records:export",
    response_class=StreamingResponse,
    openapi_extra=act(Action.ORG_VIEW_AUDIT),
    tags=["audit"],
    responses={
        200: {"content": {"application/jsonl": {}}, "description": "One record per line, oldest first"}
    },
)
def export_audit_records(
    ctx: CtxDep,
    filters: FiltersDep,
    org_id: str = Path(max_length=MAX_ID),
) -> StreamingResponse:
    """Every matching record as JSON Lines, oldest first (for a SIEM or an auditor)."""
    org = tenancy.get_organization(ctx.db, ctx.me, org_id, Action.ORG_VIEW_AUDIT)
    audit.query(org.id, filters)  # bad filters fail here, as a 422, not halfway through the body
    database: Database = ctx.request.app.state.db
    org_key = org.id

    def lines() -> Iterator[bytes]:
        # Its own session: the request's is closed once the handler returns.
        with database.session() as s:
            for r in audit.export(s, org_key, filters):
                yield (json.dumps(audit.as_dict(r), ensure_ascii=False) + "\n").encode()

    name = f"atoll-audit-{org.name}.jsonl"
    return StreamingResponse(
        lines(),
        media_type="application/jsonl",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
