"""Turn what people type (an id or a name) into the API object it means.

- organizations: id or name;
- communities: id, name (unique within an organization) or ORGANIZATION/COMMUNITY;
- projects: id, name, or COMMUNITY/PROJECT (COMMUNITY as above);
- groups and billing accounts: id or name (unique within an organization);
- API tokens: id or name.

A name that several visible objects share is an error that lists them and asks for the id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from atoll.cli.output import fail, usage
from atoll.client import AtollError, Client

Obj = dict[str, Any]


def looks_like_id(ref: str, prefix: str) -> bool:
    """Atoll ids are ``<prefix>-<16 hex digits>``, e.g. ``prj-1f3c9a0b2d4e6f80``."""
    return re.fullmatch(rf"{prefix}-[0-9a-f]{{16}}", ref) is not None


def _get_or_none(c: Client, path: str) -> Obj | None:
    try:
        found: Obj = c.get(path)
    except AtollError as e:
        if e.status == 404:
            return None
        raise
    return found


def _one(found: list[Obj], kind: str, ref: str, describe: Any = None) -> Obj:
    if not found:
        fail(f"{kind} {ref!r} not found, or you have no role that lets you see it")
    if len(found) > 1:
        where = ", ".join(describe(o) if describe else o["id"] for o in found)
        fail(f"several {kind}s are named {ref!r} ({where}): use the id instead")
    return found[0]


# --- organizations --------------------------------------------------------------------------


def organization(c: Client, ref: str) -> Obj:
    """An organization by id or name (the API accepts both)."""
    org = _get_or_none(c, f"/organizations/{quote(ref, safe='')}")
    if org is None:
        fail(f"organization {ref!r} not found, or you are not a member of it")
    return org


def organization_or_default(c: Client, ref: str | None) -> Obj:
    """The named organization, else the only one the caller belongs to."""
    if ref:
        return organization(c, ref)
    orgs = list(c.paginate("/organizations"))
    if len(orgs) == 1:
        return orgs[0]
    if not orgs:
        fail("you are not a member of any organization: ask an admin to add you to one")
    usage(
        f"you belong to several organizations ({', '.join(o['name'] for o in orgs)}): choose one with --org"
    )


def _org_names(c: Client, orgs: set[str]) -> dict[str, str]:
    names: dict[str, str] = {}
    for oid in orgs:
        org = _get_or_none(c, f"/organizations/{oid}")
        names[oid] = org["name"] if org else oid
    return names


# --- communities ----------------------------------------------------------------------------


def community(c: Client, ref: str, org: str | None = None) -> Obj:
    """A community by id, by name (unique per organization) or as ORGANIZATION/COMMUNITY."""
    if looks_like_id(ref, "com"):
        found = _get_or_none(c, f"/communities/{ref}")
        if found is not None:
            return found
    name = ref
    if "/" in ref:
        org, name = ref.split("/", 1)
    params: dict[str, Any] = {"name": name}
    if org:
        params["organizationId"] = organization(c, org)["id"]
    matches = list(c.paginate("/communities", **params))
    if len(matches) > 1:
        names = _org_names(c, {m["organizationId"] for m in matches})
        where = ", ".join(f"{m['id']} in {names[m['organizationId']]}" for m in matches)
        fail(f"several communities are named {name!r} ({where}): use the id, ORGANIZATION/{name} or --org")
    return _one(matches, "community", ref)


# --- projects -------------------------------------------------------------------------------


def project(c: Client, ref: str, community_ref: str | None = None) -> Obj:
    """A project by id, by name, or as COMMUNITY/PROJECT (or with -c COMMUNITY)."""
    if looks_like_id(ref, "prj"):
        found = _get_or_none(c, f"/projects/{ref}")
        if found is not None:
            return found
    name = ref
    if "/" in ref:
        community_ref, name = ref.rsplit("/", 1)
    params: dict[str, Any] = {"projectNamePattern": name}
    if community_ref:
        params["communityId"] = community(c, community_ref)["id"]
    matches = [p for p in c.paginate("/projects", **params) if p["name"] == name]
    if len(matches) > 1:
        coms: dict[str, str] = {}
        for m in matches:
            com = _get_or_none(c, f"/communities/{m['communityId']}")
            coms[m["communityId"]] = com["name"] if com else m["communityId"]
        where = ", ".join(f"{coms[m['communityId']]}/{m['name']} = {m['id']}" for m in matches)
        fail(f"several projects are named {name!r} ({where}): use the id or COMMUNITY/{name}")
    return _one(matches, "project", ref)


# --- groups, billing accounts, tokens ---------------------------------------------------------


def _org_params(c: Client, org: str | None) -> dict[str, Any]:
    if not org:
        return {}
    oid = organization(c, org)["id"]
    # GET /groups and /users name the filter `organization_id`; the other lists use
    # `organizationId`. Send both so this keeps working once the API is made consistent.
    return {"organizationId": oid, "organization_id": oid}


def group(c: Client, ref: str, org: str | None = None) -> Obj:
    """A group by id or by name (unique per organization)."""
    if looks_like_id(ref, "grp"):
        found = _get_or_none(c, f"/groups/{ref}")
        if found is not None:
            return found
    oid = organization(c, org)["id"] if org else None
    matches = [g for g in c.paginate("/groups", **_org_params(c, org)) if g["name"] == ref]
    if oid:
        matches = [g for g in matches if g["organizationId"] == oid]
    if len(matches) > 1:
        names = _org_names(c, {m["organizationId"] for m in matches})
        where = ", ".join(f"{m['id']} in {names[m['organizationId']]}" for m in matches)
        fail(f"several groups are named {ref!r} ({where}): use the id or --org")
    return _one(matches, "group", ref)


def billing_account(c: Client, ref: str, org: str | None = None) -> Obj:
    """A billing account by id or by name (unique per organization)."""
    if looks_like_id(ref, "bil"):
        found = _get_or_none(c, f"/billing-accounts/{ref}")
        if found is not None:
            return found
    matches = [b for b in c.paginate("/billing-accounts", **_org_params(c, org)) if b["name"] == ref]
    if len(matches) > 1:
        names = _org_names(c, {m["organizationId"] for m in matches})
        where = ", ".join(f"{m['id']} in {names[m['organizationId']]}" for m in matches)
        fail(f"several billing accounts are named {ref!r} ({where}): use the id or --org")
    return _one(matches, "billing account", ref)


def token(c: Client, ref: str) -> Obj:
    """One of the caller's API tokens by id or name (active ones win a name tie)."""
    tokens = list(c.paginate("/tokens"))
    by_id = [t for t in tokens if t["id"] == ref]
    if by_id:
        return by_id[0]
    named = [t for t in tokens if t["name"] == ref]
    active = [t for t in named if t["state"] == "ACTIVE"]
    return _one(active or named, "token", ref)


# --- member scopes --------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """The resource a role binding or invite is on: its API path and a name for messages."""

    kind: str  # organization | community | project | billing account
    path: str  # e.g. /projects/prj-…
    id: str
    label: str


def scope(
    c: Client,
    *,
    org: str | None = None,
    community_ref: str | None = None,
    project_ref: str | None = None,
    billing_account_ref: str | None = None,
    allowed: tuple[str, ...] = ("--org", "--community", "--project", "--billing-account"),
) -> Scope:
    """Exactly one scope flag of those `allowed`, resolved."""
    given = {
        "--org": org,
        "--community": community_ref,
        "--project": project_ref,
        "--billing-account": billing_account_ref,
    }
    chosen = [flag for flag, value in given.items() if value]
    if len(chosen) != 1:
        usage(f"give exactly one of {', '.join(allowed)}" + (f" (got {', '.join(chosen)})" if chosen else ""))
    if org:
        o = organization(c, org)
        return Scope("organization", f"/organizations/{o['id']}", o["id"], o["name"])
    if community_ref:
        com = community(c, community_ref)
        return Scope("community", f"/communities/{com['id']}", com["id"], com["name"])
    if project_ref:
        p = project(c, project_ref)
        return Scope("project", f"/projects/{p['id']}", p["id"], p["name"])
    assert billing_account_ref is not None
    ba = billing_account(c, billing_account_ref)
    return Scope("billing account", f"/billing-accounts/{ba['id']}", ba["id"], ba["name"])
