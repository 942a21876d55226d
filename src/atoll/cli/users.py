"""`atoll user`: accounts on this installation."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from atoll.cli import resolve
from atoll.cli.lazy import summary
from atoll.cli.output import Column, Format, FormatOpt, client, emit_list, emit_one, success

app = typer.Typer(help=summary("user"), no_args_is_help=True)

COLUMNS: list[Column] = [
    ("ID", "id"),
    ("USERNAME", "username"),
    ("NAME", "displayName"),
    ("EMAIL", "email"),
    ("ADMIN", "isAdmin"),
]


@app.command("list")
def list_(
    org: Annotated[str | None, typer.Option("--org", help="Only members of this organization")] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Users you can see: everyone for installation admins, else your organizations' members."""
    with client() as c:
        params: dict[str, Any] = {}
        if org:
            oid = resolve.organization(c, org)["id"]
            # The API names this filter `organization_id` (other lists: `organizationId`).
            params = {"organization_id": oid, "organizationId": oid}
        emit_list(list(c.paginate("/users", **params)), fmt, COLUMNS, "no users")


@app.command()
def create(
    username: Annotated[
        str, typer.Argument(help="2-63 characters: lowercase letters, digits, '-', '_', '.'")
    ],
    password: Annotated[
        str | None,
        typer.Option("--password", help="At least 10 characters, not easy to guess (prompted if missing)"),
    ] = None,
    email: Annotated[str, typer.Option(help="E-mail address")] = "",
    display_name: Annotated[str, typer.Option(help="Name shown in the UI")] = "",
    admin: Annotated[bool, typer.Option("--admin", help="Make an installation admin")] = False,
    org: Annotated[
        str | None, typer.Option("--org", help="Also make the user a member of this organization")
    ] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Create an account (installation admins)."""
    if password is None:
        password = typer.prompt("Password for the new user", hide_input=True, confirmation_prompt=True)
    with client() as c:
        body: dict[str, Any] = {
            "username": username,
            "password": password,
            "email": email,
            "displayName": display_name,
            "isAdmin": admin,
        }
        o = resolve.organization(c, org) if org else None
        if o is not None:
            body["organizationId"] = o["id"]
        user = c.post("/users", body)
    if fmt is Format.json:
        emit_one(user, fmt)
    else:
        where = f", member of organization {o['name']}" if o else ""
        success(f"Created user {user['username']} ({user['id']}){where}")
