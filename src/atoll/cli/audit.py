"""`atoll audit`: an organization's audit log (organization admins)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from atoll.cli import resolve
from atoll.cli.lazy import summary
from atoll.cli.output import Column, Format, FormatOpt, client, emit_list, success

app = typer.Typer(help=summary("audit"), no_args_is_help=True)

COLUMNS: list[Column] = [
    ("TIME", "time"),
    ("ACTOR", "actor"),
    ("ACTION", "action"),
    ("RESOURCE", "resourceId"),
    ("RESULT", "result"),
    ("FROM", "address"),
    ("DETAIL", "detail"),
]

Org = Annotated[str | None, typer.Option("--org", help="The organization (default: your only one)")]
Actor = Annotated[str | None, typer.Option(help="Only this user's (id or username)")]
Action = Annotated[str | None, typer.Option(help="Only this action (e.g. sign_in, create_project)")]
ResourceId = Annotated[str | None, typer.Option("--resource", help="Only about this resource id")]
Result = Annotated[str | None, typer.Option(help="Only success, denied or failed")]
Since = Annotated[str | None, typer.Option(help="From this time on (ISO 8601, e.g. 2026-12-01)")]
Until = Annotated[str | None, typer.Option(help="Before this time (ISO 8601)")]


def _params(
    actor: str | None,
    action: str | None,
    resource: str | None,
    result: str | None,
    since: str | None,
    until: str | None,
) -> dict[str, Any]:
    return {
        "actor": actor,
        "action": action,
        "resourceId": resource,
        "result": result,
        "since": since,
        "until": until,
    }


@app.command("list")
def list_(
    org: Org = None,
    actor: Actor = None,
    action: Action = None,
    resource: ResourceId = None,
    result: Result = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[
        int, typer.Option(help="At most this many records, newest first", min=1, max=100000)
    ] = 100,
    fmt: FormatOpt = Format.table,
) -> None:
    """Who did what, newest first."""
    with client() as c:
        oid = resolve.organization_or_default(c, org)["id"]
        params = _params(actor, action, resource, result, since, until)
        rows: list[dict[str, Any]] = []
        for row in c.paginate(f"/organizations/{oid}/audit-records", page_size=min(limit, 1000), **params):
            rows.append(row)
            if len(rows) >= limit:
                break
        emit_list(rows, fmt, COLUMNS, "no audit records")


@app.command()
def export(
    org: Org = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file (default: standard output)")
    ] = None,
    actor: Actor = None,
    action: Action = None,
    resource: ResourceId = None,
    result: Result = None,
    since: Since = None,
    until: Until = None,
) -> None:
    """Every matching record as JSON Lines, oldest first."""
    with client() as c:
        oid = resolve.organization_or_default(c, org)["id"]
        chunks = c.stream(
            f"/organizations/{oid}/audit-records:export",
            **_params(actor, action, resource, result, since, until),
        )
        if output is None:
            for chunk in chunks:
                sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
            return
        n = 0
        with output.open("wb") as f:
            for chunk in chunks:
                f.write(chunk)
                n += chunk.count(b"\n")
        success(f"{n} audit records written to {output}")
