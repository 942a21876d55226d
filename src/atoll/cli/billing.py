"""`atoll billing-account`: accounts that pay for communities' compute (spec §7)."""

from __future__ import annotations

from typing import Annotated, Any

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

app = typer.Typer(help=summary("billing-account"), no_args_is_help=True)

AccountArg = Annotated[str, typer.Argument(help="Billing account id or name")]
OrgOpt = Annotated[str | None, typer.Option("--org", help="Organization id or name")]
COLUMNS: list[Column] = [
    ("ID", "id"),
    ("NAME", "name"),
    ("ORGANIZATION", "organizationId"),
    ("CURRENCY", "currency"),
    ("UNIT PRICE", "unitPrice"),
    ("ACTIVE", "active"),
]


@app.command("list")
def list_(org: OrgOpt = None, fmt: FormatOpt = Format.table) -> None:
    """Billing accounts you can see."""
    with client() as c:
        params: dict[str, Any] = {}
        if org:
            params["organizationId"] = resolve.organization(c, org)["id"]
        emit_list(list(c.paginate("/billing-accounts", **params)), fmt, COLUMNS, "no billing accounts")


@app.command()
def get(account: AccountArg, org: OrgOpt = None, fmt: FormatOpt = Format.table) -> None:
    """Show one billing account."""
    with client() as c:
        emit_one(resolve.billing_account(c, account, org), fmt)


@app.command()
def create(
    name: Annotated[
        str, typer.Argument(help="Lowercase letters, digits and hyphens; unique in the organization")
    ],
    org: OrgOpt = None,
    description: Annotated[str, typer.Option(help="Free text, up to 256 characters")] = "",
    currency: Annotated[str, typer.Option(help="USD, EUR, RUB or KZT")] = "USD",
    unit_price: Annotated[
        float | None, typer.Option(help="Price of one unit (1 vCPU-second); default 0.0000096")
    ] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Create a billing account (organization members; you become its Admin)."""
    with client() as c:
        o = resolve.organization_or_default(c, org)
        body: dict[str, Any] = {
            "organizationId": o["id"],
            "name": name,
            "description": description,
            "currency": currency,
        }
        if unit_price is not None:
            body["unitPrice"] = unit_price
        ba = c.post("/billing-accounts", body)
    emit_done(ba, fmt, f"Created billing account {ba['name']} ({ba['id']}) in organization {o['name']}")


@app.command()
def update(
    account: AccountArg,
    org: OrgOpt = None,
    name: Annotated[str | None, typer.Option(help="New name")] = None,
    description: Annotated[str | None, typer.Option(help="New description")] = None,
    unit_price: Annotated[float | None, typer.Option(help="New price of one unit")] = None,
    active: Annotated[bool | None, typer.Option("--active/--suspended", help="Suspend or reactivate")] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Change a billing account (billing account Admins)."""
    body = drop_none({"name": name, "description": description, "unitPrice": unit_price, "active": active})
    if not body:
        usage("nothing to change: give --name, --description, --unit-price or --active/--suspended")
    with client() as c:
        bid = resolve.billing_account(c, account, org)["id"]
        ba = c.patch(f"/billing-accounts/{bid}", body)
    emit_done(ba, fmt, f"Updated billing account {ba['name']} ({ba['id']})")


@app.command()
def delete(account: AccountArg, org: OrgOpt = None, yes: YesOpt = False) -> None:
    """Delete a billing account that pays for no community."""
    with client() as c:
        ba = resolve.billing_account(c, account, org)
        confirm(f"Delete billing account {ba['name']} ({ba['id']})?", yes)
        c.delete(f"/billing-accounts/{ba['id']}")
    success(f"Deleted billing account {ba['name']}")


@app.command("usage")
def usage_(
    account: AccountArg,
    org: OrgOpt = None,
    since: Annotated[str | None, typer.Option(help="ISO date-time, e.g. 2025-01-01")] = None,
    until: Annotated[str | None, typer.Option(help="ISO date-time")] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Units used by the communities this account pays for, and their cost."""
    with client() as c:
        bid = resolve.billing_account(c, account, org)["id"]
        emit_one(c.get(f"/billing-accounts/{bid}/usage", since=since, until=until), fmt)
