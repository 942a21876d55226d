"""The Members tab shared by organizations, communities and projects: role bindings and invite links."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from atoll.domain import access, audit, members
from atoll.domain.access import MANAGE_ACTION, ROLES, ResourceType
from atoll.errors import DomainError, NotFound
from atoll.store.tables import Community, Organization, Project
from atoll.web import forms, queries
from atoll.web.context import FormError, WebCtx, WebRoute, redirect, signed_in

router = APIRouter(route_class=WebRoute, include_in_schema=False)
Ctx = Annotated[WebCtx, Depends(signed_in)]

KINDS = {
    "orgs": ResourceType.ORGANIZATION,
    "communities": ResourceType.COMMUNITY,
    "projects": ResourceType.PROJECT,
}
# kind → function that draws the resource's page on a given tab (registered by the page modules).
Renderer = Callable[..., Response]
RENDERERS: dict[str, Renderer] = {}


@dataclass
class BindingRow:
    id: str
    subject_type: str
    subject_name: str
    role: str
    role_id: str
    created_at: Any
    is_me: bool


def members_view(ctx: WebCtx, resource: Organization | Community | Project) -> dict[str, Any]:
    """What the Members tab shows; management controls only where access.can says so."""
    rtype = members.resource_type_of(resource)
    me = ctx.me
    rows = [
        BindingRow(
            id=b.id,
            subject_type=b.subject_type,
            subject_name=members.subject_name(ctx.db, b),
            role=b.role,
            role_id=forms.role_id(rtype, b.role),
            created_at=b.created_at,
            is_me=b.subject_id == me.user.id,
        )
        for b in members.list_bindings(ctx.db, me, rtype, resource.id)
    ]
    can_manage = access.can(ctx.db, me, MANAGE_ACTION[rtype], resource)
    view: dict[str, Any] = {
        "bindings": rows,
        "can_manage": can_manage,
        "roles": list(ROLES[rtype]),
        "rtype": rtype.value,
        "invites": [],
        "invites_allowed": rtype in members.INVITE_TYPES,
        "user_choices": [],
        "group_choices": [],
    }
    if can_manage:
        org_id = members.organization_id_of(ctx.db, resource)
        try:
            view["user_choices"] = [u.username for u in members.list_users(ctx.db, me, org_id)]
        except DomainError:
            pass  # a project admin outside the organization can still type a username
        view["group_choices"] = [g.name for g in queries.groups(ctx.db, me, org_id)]
        if rtype in members.INVITE_TYPES:
            view["invites"] = [
                {
                    "id": i.id,
                    "role": i.role,
                    "expires_at": i.expires_at,
                    "uses": i.uses,
                    "max_uses": i.max_uses,
                    "state": members.invite_state(i),
                }
                for i in members.list_invites(ctx.db, me, rtype, resource.id)
            ]
    return view


def _after(ctx: WebCtx, kind: str, rid: str, notice: str) -> Response:
    if ctx.htmx:
        return RENDERERS[kind](ctx, rid, "members", notice=notice)
    return redirect(ctx, f"/{kind}/{rid}?tab=members", flash=notice)


def _routes(kind: str, rtype: ResourceType) -> None:
    """Register the member and invite forms under /orgs, /communities and /projects."""

    def add_member(rid: str, ctx: Ctx) -> Response:
        values = {
            "subjectType": ctx.value("subjectType", "user"),
            "subject": ctx.value("subject"),
            "role": ctx.value("role"),
        }
        try:
            b = members.set_binding(
                ctx.db,
                ctx.me,
                rtype,
                rid,
                subject_type=values["subjectType"],
                subject=values["subject"],
                role=values["role"],
            )
            name = members.subject_name(ctx.db, b)
            audit.note_detail(f"{b.subject_type} {name} given role {b.role}")
            ctx.commit()
        except NotFound:
            raise
        except DomainError as e:
            ctx.rollback()
            return RENDERERS[kind](
                ctx, rid, "members", error=FormError.of("member", e, values), status=e.status
            )
        return _after(ctx, kind, rid, f"{name} now has the {forms.role_label(values['role'])} role")

    def remove_member(rid: str, binding_id: str, ctx: Ctx) -> Response:
        try:
            members.remove_binding(ctx.db, ctx.me, rtype, rid, binding_id)
            ctx.commit()
        except NotFound:
            raise
        except DomainError as e:
            ctx.rollback()
            return RENDERERS[kind](ctx, rid, "members", error=FormError.of("member", e), status=e.status)
        return _after(ctx, kind, rid, "Role removed")

    router.add_api_route(
        f"/{kind}/{{rid}}/members", add_member, methods=["POST"], name=f"web_{kind}_add_member"
    )
    router.add_api_route(
        f"/{kind}/{{rid}}/members/{{binding_id}}/remove",
        remove_member,
        methods=["POST"],
        name=f"web_{kind}_remove_member",
    )
    if rtype not in members.INVITE_TYPES:
        return

    def create_invite(rid: str, ctx: Ctx) -> Response:
        values = {
            "role": ctx.value("role"),
            "expiresInDays": ctx.value("expiresInDays"),
            "maxUses": ctx.value("maxUses"),
        }
        try:
            days = forms.parse_int(values["expiresInDays"], "expiresInDays", ctx.settings.invite_ttl_days)
            uses = forms.parse_int(values["maxUses"], "maxUses", 1)
            inv, raw = members.create_invite(
                ctx.db, ctx.me, rtype, rid, role=values["role"], expires_in_days=days, max_uses=uses
            )
            ctx.commit()
        except NotFound:
            raise
        except DomainError as e:
            ctx.rollback()
            return RENDERERS[kind](
                ctx, rid, "members", error=FormError.of("invite", e, values), status=e.status
            )
        # The link is shown once, right here: only its hash is stored.
        new_invite = {
            "url": f"{ctx.public_base}/invite/{raw}",
            "role": inv.role,
            "expires_at": inv.expires_at,
            "max_uses": inv.max_uses,
        }
        return RENDERERS[kind](ctx, rid, "members", notice="Invite link created", new_invite=new_invite)

    def revoke_invite(rid: str, invite_id: str, ctx: Ctx) -> Response:
        try:
            members.revoke_invite(ctx.db, ctx.me, rtype, rid, invite_id)
            ctx.commit()
        except NotFound:
            raise
        except DomainError as e:
            ctx.rollback()
            return RENDERERS[kind](ctx, rid, "members", error=FormError.of("invite", e), status=e.status)
        return _after(ctx, kind, rid, "Invite link revoked")

    router.add_api_route(
        f"/{kind}/{{rid}}/invites", create_invite, methods=["POST"], name=f"web_{kind}_invite"
    )
    router.add_api_route(
        f"/{kind}/{{rid}}/invites/{{invite_id}}/revoke",
        revoke_invite,
        methods=["POST"],
        name=f"web_{kind}_revoke_invite",
    )


for _kind_name, _rtype in KINDS.items():
    _routes(_kind_name, _rtype)
