"""Role bindings ("members"), groups and invite links (spec §2)."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any

from fastapi import APIRouter, Response

from atoll.api.common import PUBLIC, OrgFilter, PageSize, PageToken, act, binding_out, invite_out
from atoll.api.deps import CtxDep
from atoll.api.pagination import page
from atoll.api.routes_auth import set_session_cookie
from atoll.api.schemas import Page
from atoll.api.schemas_access import (
    AccessBindingIn,
    AccessBindingOut,
    InviteAccept,
    InviteCreate,
    InviteInfo,
    InviteOut,
    NewInviteOut,
)
from atoll.api.schemas_auth import UserOut
from atoll.api.schemas_tenancy import GroupCreate, GroupMemberAdd, GroupOut, GroupUpdate
from atoll.domain import audit, auth, listing, members
from atoll.domain.access import MANAGE_ACTION, VIEW_ACTION, Action, ResourceType
from atoll.errors import Forbidden, Invalid, Unauthenticated
from atoll.store.tables import Group

router = APIRouter()

_PATHS = {
    ResourceType.ORGANIZATION: ("organizations", "organization_id"),
    ResourceType.COMMUNITY: ("communities", "community_id"),
    ResourceType.PROJECT: ("projects", "project_id"),
    ResourceType.BILLING_ACCOUNT: ("billing-accounts", "billing_account_id"),
}


def _bindings_routes(rtype: ResourceType) -> None:
    plural, param = _PATHS[rtype]
    base = f"/{plural}/{{{param}}}/access-bindings"
    tag: list[str | Enum] = [plural]

    def list_(ctx: CtxDep, **kw: str) -> list[AccessBindingOut]:
        return [binding_out(ctx.db, b) for b in members.list_bindings(ctx.db, ctx.me, rtype, kw[param])]

    def add(body: AccessBindingIn, ctx: CtxDep, **kw: str) -> AccessBindingOut:
        b = members.set_binding(
            ctx.db,
            ctx.me,
            rtype,
            kw[param],
            subject_type=body.subject_type,
            subject=body.subject,
            role=body.role,
        )
        audit.note_detail(f"{body.subject_type} {body.subject} given role {body.role}")
        return ctx.commit(binding_out(ctx.db, b))

    def remove(binding_id: str, ctx: CtxDep, **kw: str) -> None:
        members.remove_binding(ctx.db, ctx.me, rtype, kw[param], binding_id)
        ctx.commit(None)

    router.add_api_route(
        base,
        _with_param(list_, param),
        methods=["GET"],
        response_model=list[AccessBindingOut],
        openapi_extra=act(VIEW_ACTION[rtype]),
        tags=tag,
        name=f"list_{rtype.value}_access_bindings",
        summary=f"List who has which role on the {rtype.value}",
    )
    router.add_api_route(
        base,
        _with_param(add, param),
        methods=["POST"],
        response_model=AccessBindingOut,
        status_code=201,
        openapi_extra=act(MANAGE_ACTION[rtype]),
        tags=tag,
        name=f"set_{rtype.value}_access_binding",
        summary=f"Give a user or group a role on the {rtype.value} (replaces their previous role there)",
    )
    router.add_api_route(
        base + "/{binding_id}",
        _with_param(remove, param),
        methods=["DELETE"],
        status_code=204,
        openapi_extra=act(MANAGE_ACTION[rtype]),
        tags=tag,
        name=f"delete_{rtype.value}_access_binding",
        summary=f"Remove a role binding from the {rtype.value}",
    )


def _invite_routes(rtype: ResourceType) -> None:
    plural, param = _PATHS[rtype]
    base = f"/{plural}/{{{param}}}/invites"
    tag: list[str | Enum] = [plural]

    def create(body: InviteCreate, ctx: CtxDep, **kw: str) -> NewInviteOut:
        inv, raw = members.create_invite(
            ctx.db,
            ctx.me,
            rtype,
            kw[param],
            role=body.role,
            expires_in_days=body.expires_in_days,
            max_uses=body.max_uses,
        )
        url = f"{ctx.settings.base_url}/invite/{raw}"
        return ctx.commit(NewInviteOut(**invite_out(inv).model_dump(), token=raw, url=url))

    def list_(ctx: CtxDep, **kw: str) -> list[InviteOut]:
        return [invite_out(i) for i in members.list_invites(ctx.db, ctx.me, rtype, kw[param])]

    def revoke(invite_id: str, ctx: CtxDep, **kw: str) -> None:
        members.revoke_invite(ctx.db, ctx.me, rtype, kw[param], invite_id)
        ctx.commit(None)

    router.add_api_route(
        base,
        _with_param(create, param),
        methods=["POST"],
        response_model=NewInviteOut,
        status_code=201,
        openapi_extra=act(MANAGE_ACTION[rtype]),
        tags=tag,
        name=f"create_{rtype.value}_invite",
        summary=f"Create an invite link to the {rtype.value}",
    )
    router.add_api_route(
        base,
        _with_param(list_, param),
        methods=["GET"],
        response_model=list[InviteOut],
        openapi_extra=act(MANAGE_ACTION[rtype]),
        tags=tag,
        name=f"list_{rtype.value}_invites",
    )
    router.add_api_route(
        base + "/{invite_id}",
        _with_param(revoke, param),
        methods=["DELETE"],
        status_code=204,
        openapi_extra=act(MANAGE_ACTION[rtype]),
        tags=tag,
        name=f"revoke_{rtype.value}_invite",
    )


def _with_param(fn: Callable[..., Any], param: str) -> Callable[..., Any]:
    """Give a generic handler a real path parameter named `param`, so FastAPI documents it."""
    import inspect

    sig = inspect.signature(fn)
    params = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    params.append(inspect.Parameter(param, inspect.Parameter.KEYWORD_ONLY, annotation=str))

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


for _rt in _PATHS:
    _bindings_routes(_rt)
for _rt in members.INVITE_TYPES:
    _invite_routes(_rt)


@router.get("/invites/{token}", response_model=InviteInfo, openapi_extra=act(PUBLIC), tags=["invites"])
def invite_info(token: str, ctx: CtxDep) -> InviteInfo:
    """What an invite link leads to; whoever holds the link may see this."""
    inv, target = members.open_invite(ctx.db, token)
    return InviteInfo(
        resource_type=inv.resource_type,
        resource_id=target.id,
        resource_name=target.name,
        role=inv.role,
        expires_at=inv.expires_at,
    )


@router.post(
    "/invites/{token}/accept", response_model=InviteInfo, openapi_extra=act(PUBLIC), tags=["invites"]
)
def accept_invite(token: str, body: InviteAccept, ctx: CtxDep, response: Response) -> InviteInfo:
    """Accept as the signed-in caller, or create an account (username + password) and accept."""
    members.open_invite(ctx.db, token)  # a dead link fails before any account is made
    if ctx.principal is not None:
        if body.username or body.password:
            raise Invalid("you are signed in: accept without username and password", field="username")
        user = ctx.principal.user
    else:
        if not ctx.settings.password_signin:
            raise Forbidden(f"{auth.PASSWORDS_OFF}, then accept the invite")
        if not body.username or not body.password:
            raise Unauthenticated("sign in first, or give a username and password to create an account")
        user = auth.create_user(ctx.db, username=body.username, password=body.password)
        new = auth.start_session(ctx.db, user, ctx.settings.session_ttl_hours)
        secure = ctx.settings.cookies_secure_for(ctx.request.url.scheme)
        set_session_cookie(response, new.cookie, secure, ctx.settings.session_ttl_hours * 3600)
    inv, target = members.accept_invite(ctx.db, user, token)
    return ctx.commit(
        InviteInfo(
            resource_type=inv.resource_type,
            resource_id=target.id,
            resource_name=target.name,
            role=inv.role,
            expires_at=inv.expires_at,
        )
    )


# --- groups ---------------------------------------------------------------------------------


@router.get("/groups", response_model=Page[GroupOut], openapi_extra=act(Action.GROUP_VIEW), tags=["groups"])
def list_groups(
    ctx: CtxDep,
    organization_id: str | None = OrgFilter,
    page_size: int = PageSize,
    page_token: str | None = PageToken,
) -> Page[GroupOut]:
    q = listing.groups(ctx.me, organization_id=organization_id)
    rows, nxt = page(ctx.db, q, Group, page_size, page_token)
    return Page(items=[GroupOut.model_validate(g) for g in rows], next_page_token=nxt)


@router.post(
    "/groups",
    response_model=GroupOut,
    status_code=201,
    openapi_extra=act(Action.GROUP_MANAGE),
    tags=["groups"],
)
def create_group(body: GroupCreate, ctx: CtxDep) -> GroupOut:
    g = members.create_group(
        ctx.db, ctx.me, organization_id=body.organization_id, name=body.name, description=body.description
    )
    return ctx.commit(GroupOut.model_validate(g))


@router.get(
    "/groups/{group_id}", response_model=GroupOut, openapi_extra=act(Action.GROUP_VIEW), tags=["groups"]
)
def get_group(group_id: str, ctx: CtxDep) -> GroupOut:
    return GroupOut.model_validate(members.get_group(ctx.db, ctx.me, group_id))


@router.patch(
    "/groups/{group_id}", response_model=GroupOut, openapi_extra=act(Action.GROUP_MANAGE), tags=["groups"]
)
def update_group(group_id: str, body: GroupUpdate, ctx: CtxDep) -> GroupOut:
    g = members.update_group(ctx.db, ctx.me, group_id, name=body.name, description=body.description)
    return ctx.commit(GroupOut.model_validate(g))


@router.delete("/groups/{group_id}", status_code=204, openapi_extra=act(Action.GROUP_MANAGE), tags=["groups"])
def delete_group(group_id: str, ctx: CtxDep) -> None:
    members.delete_group(ctx.db, ctx.me, group_id)
    ctx.commit(None)


@router.get(
    "/groups/{group_id}/members",
    response_model=list[UserOut],
    openapi_extra=act(Action.GROUP_VIEW),
    tags=["groups"],
)
def list_group_members(group_id: str, ctx: CtxDep) -> list[UserOut]:
    return [UserOut.model_validate(u) for u in members.group_members(ctx.db, ctx.me, group_id)]


@router.post(
    "/groups/{group_id}/members",
    response_model=UserOut,
    status_code=201,
    openapi_extra=act(Action.GROUP_MANAGE),
    tags=["groups"],
)
def add_group_member(group_id: str, body: GroupMemberAdd, ctx: CtxDep) -> UserOut:
    return ctx.commit(UserOut.model_validate(members.add_group_member(ctx.db, ctx.me, group_id, body.user)))


@router.delete(
    "/groups/{group_id}/members/{user}",
    status_code=204,
    openapi_extra=act(Action.GROUP_MANAGE),
    tags=["groups"],
)
def remove_group_member(group_id: str, user: str, ctx: CtxDep) -> None:
    members.remove_group_member(ctx.db, ctx.me, group_id, user)
    ctx.commit(None)
