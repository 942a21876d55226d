"""`atoll env`: the environments workloads run in — the installation's built-in ones and their
build state on this machine (spec §4.2)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer

from atoll.cli.output import Column, Format, FormatOpt, client, emit_list, emit_one

app = typer.Typer(help="Environments: locked package sets notebooks and jobs run in.", no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="Environment name, e.g. datascience")]


def _size(env: dict[str, Any]) -> str:
    size = env.get("sizeBytes")
    return f"{size / 1e9:.1f} GB" if size else "-"


def _status(env: dict[str, Any]) -> str:
    status = str(env["status"]).lower()
    return f"{status}: {env['detail']}" if env.get("detail") else status


COLUMNS: list[Column] = [
    ("NAME", "name"),
    ("TITLE", "title"),
    ("DEFAULT", lambda e: "yes" if e.get("default") else ""),
    ("PACKAGES", "packagesLocked"),
    ("SIZE", _size),
    ("STATUS", _status),
]


@app.command("list")
def list_(fmt: FormatOpt = Format.table) -> None:
    """Every environment, with whether it is built on this installation."""
    with client() as c:
        emit_list(c.get("/environments"), fmt, COLUMNS, "no environments")


@app.command()
def get(name: NameArg, fmt: FormatOpt = Format.table) -> None:
    """Show one environment: what it holds, its size and its build."""
    with client() as c:
        emit_one(c.get(f"/environments/{quote(name, safe='')}"), fmt)
