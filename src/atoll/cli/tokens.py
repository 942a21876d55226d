"""`atoll token`: your personal API tokens (for scripts, CI and the SDK)."""

from __future__ import annotations

from typing import Annotated

import typer

from atoll.cli import resolve
from atoll.cli.lazy import summary
from atoll.cli.output import Column, Format, FormatOpt, client, emit_list, emit_one, out, success, usage, warn

app = typer.Typer(help=summary("token"), no_args_is_help=True)

COLUMNS: list[Column] = [
    ("ID", "id"),
    ("NAME", "name"),
    ("PREFIX", "prefix"),
    ("STATE", "state"),
    ("EXPIRES", "expiresAt"),
    ("LAST USED", "lastUsedAt"),
]


@app.command("list")
def list_(fmt: FormatOpt = Format.table) -> None:
    """Your tokens (the tokens themselves are never shown again; the prefix tells them apart)."""
    with client() as c:
        emit_list(list(c.paginate("/tokens")), fmt, COLUMNS, "no tokens")


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="What the token is for, e.g. ci or laptop")],
    expires_in_days: Annotated[int | None, typer.Option(help="1-3650 days")] = 90,
    no_expiry: Annotated[bool, typer.Option("--no-expiry", help="A token that never expires")] = False,
    fmt: FormatOpt = Format.table,
) -> None:
    """Create a token and print it once."""
    if no_expiry and expires_in_days not in (None, 90):
        usage("give --expires-in-days or --no-expiry, not both")
    with client() as c:
        tok = c.post("/tokens", {"name": name, "expiresInDays": None if no_expiry else expires_in_days})
    if fmt is Format.json:
        emit_one(tok, fmt)
        return
    success(f"Created token {tok['name']} ({tok['id']}), expires {tok['expiresAt'] or 'never'}:")
    out.print(tok["token"], markup=False, soft_wrap=True)
    warn("copy it now: it will not be shown again")


@app.command()
def revoke(token: Annotated[str, typer.Argument(help="Token id or name")]) -> None:
    """Revoke a token; anything using it stops working at once."""
    with client() as c:
        t = resolve.token(c, token)
        c.delete(f"/tokens/{t['id']}")
    success(f"Revoked token {t['name']} ({t['id']})")
