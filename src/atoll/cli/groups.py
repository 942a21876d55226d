"""`atoll group`: named sets of an organization's users that roles can be granted to (spec §2)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import typer

from atoll.cli import resolve
from atoll.cli.lazy import summary
from atoll.cli.output import (
    Column,
    Format,
    FormatOpt,
    YesOpt,
    client,
    confirm,
    drop_none,
    emit_done,
    emit_list,
    emit_one,
    success,
    usage,
)
from atoll.cli.users import COLUMNS as USER_COLUMNS

app = typer.Typer(help=summary("group"), no_args_is_help=True)

GroupArg = Annotated[str, typer.Argument(help="Group id or name")]
OrgOpt = Annotated[str | None, typer.Option("--org", help="Organization id or name")]
UserArg = Annotated[str, typer.Argument(help="Username or user id")]
COLUMNS: list[Column] = [
    ("ID", "id"),
    ("NAME", "name"),
    ("ORGANIZATION", "organizationId"),
    ("DESCRIPTION", "description"),
]


@app.command("list")
def list_(org: OrgOpt = None, fmt: FormatOpt = Format.table) -> None:
    """Groups of the organizations you belong to."""
    with client() as c:
        items = list(c.paginate("/groups"))
        if org:
            oid = resolve.organization(c, org)["id"]
            items = [g for g in items if g["organizationId"] == oid]
        emit_list(items, fmt, COLUMNS, "no groups")


@app.command()
def get(group: GroupArg, org: OrgOpt = None, fmt: FormatOpt = Format.table) -> None:
    """Show one group."""
    with client() as c:
        emit_one(resolve.group(c, group, org), fmt)


@app.command()
def create(
    name: Annotated[
        str, typer.Argument(help="Lowercase letters, digits and hyphens; unique in the organization")
    ],
    org: OrgOpt = None,
    description: Annotated[str, typer.Option(help="Free text, up to 256 characters")] = "",
    fmt: FormatOpt = Format.table,
) -> None:
    """Create a group (organization admins)."""
    with client() as c:
        o = resolve.organization_or_default(c, org)
        g = c.post("/groups", {"organizationId": o["id"], "name": name, "description": description})
    emit_done(g, fmt, f"Created group {g['name']} ({g['id']}) in organization {o['name']}")


@app.command()
def update(
    group: GroupArg,
    org: OrgOpt = None,
    name: Annotated[str | None, typer.Option(help="New name")] = None,
    description: Annotated[str | None, typer.Option(help="New description")] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Rename a group or change its description."""
    body = drop_none({"name": name, "description": description})
    if not body:
        usage("nothing to change: give --name or --description")
    with client() as c:
        gid = resolve.group(c, group, org)["id"]
        g = c.patch(f"/groups/{gid}", body)
    emit_done(g, fmt, f"Updated group {g['name']} ({g['id']})")


@app.command()
def delete(group: GroupArg, org: OrgOpt = None, yes: YesOpt = False) -> None:
    """Delete a group and the roles granted to it."""
    with client() as c:
        g = resolve.group(c, group, org)
        confirm(f"Delete group {g['name']} ({g['id']}) and every role granted to it?", yes)
        c.delete(f"/groups/{g['id']}")
    success(f"Deleted group {g['name']}")


@app.command("add-user")
def add_user(group: GroupArg, user: UserArg, org: OrgOpt = None) -> None:
    """Add a member of the group's organization to the group."""
    with client() as c:
        g = resolve.group(c, group, org)
        u = c.post(f"/groups/{g['id']}/members", {"user": user})
    success(f"Added {u['username']} to group {g['name']}")


@app.command("remove-user")
def remove_user(group: GroupArg, user: UserArg, org: OrgOpt = None) -> None:
    """Take a user out of the group."""
    with client() as c:
        g = resolve.group(c, group, org)
        c.delete(f"/groups/{g['id']}/members/{quote(user, safe='')}")
    success(f"Removed {user} from group {g['name']}")


@app.command()
def members(group: GroupArg, org: OrgOpt = None, fmt: FormatOpt = Format.table) -> None:
    """List the users in a group."""
    with client() as c:
        g = resolve.group(c, group, org)
        emit_list(c.get(f"/groups/{g['id']}/members"), fmt, USER_COLUMNS, f"group {g['name']} has no members")
