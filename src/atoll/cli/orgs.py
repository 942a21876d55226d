"""`atoll org`: organizations, the top of the hierarchy (spec §1)."""

from __future__ import annotations

from typing import Annotated

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
)

app = typer.Typer(help=summary("org"), no_args_is_help=True)

COLUMNS: list[Column] = [
    ("ID", "id"),
    ("NAME", "name"),
    ("DESCRIPTION", "description"),
    ("CREATED", "createdAt"),
]
OrgArg = Annotated[str, typer.Argument(help="Organization id or name")]


@app.command("list")
def list_(fmt: FormatOpt = Format.table) -> None:
    """Organizations you belong to (all of them for installation admins)."""
    with client() as c:
        emit_list(list(c.paginate("/organizations")), fmt, COLUMNS, "no organizations")


@app.command()
def get(org: OrgArg, fmt: FormatOpt = Format.table) -> None:
    """Show one organization."""
    with client() as c:
        emit_one(resolve.organization(c, org), fmt)


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="Lowercase letters, digits and hyphens")],
    description: Annotated[str, typer.Option(help="Free text, up to 256 characters")] = "",
    fmt: FormatOpt = Format.table,
) -> None:
    """Create an organization (installation admins)."""
    with client() as c:
        org = c.post("/organizations", {"name": name, "description": description})
    emit_done(org, fmt, f"Created organization {org['name']} ({org['id']})")


@app.command()
def update(
    org: OrgArg,
    name: Annotated[str | None, typer.Option(help="New name")] = None,
    description: Annotated[str | None, typer.Option(help="New description")] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Rename an organization or change its description (organization admins)."""
    with client() as c:
        oid = resolve.organization(c, org)["id"]
        updated = c.patch(f"/organizations/{oid}", drop_none({"name": name, "description": description}))
    emit_done(updated, fmt, f"Updated organization {updated['name']} ({updated['id']})")


@app.command()
def delete(org: OrgArg, yes: YesOpt = False) -> None:
    """Delete an organization that has no communities left (installation admins)."""
    with client() as c:
        o = resolve.organization(c, org)
        confirm(f"Delete organization {o['name']} ({o['id']})?", yes)
        c.delete(f"/organizations/{o['id']}")
    success(f"Deleted organization {o['name']}")
