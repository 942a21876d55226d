"""What every command shares: the client, `--format table|json`, tables, errors, small parsers."""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import StrEnum
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, cast

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from atoll.client import Client


def _click_exceptions() -> ModuleType:
    # Typer >= 0.26 vendors Click as typer._click; older releases use Click itself.
    try:
        return importlib.import_module("typer._click.exceptions")
    except ImportError:
        return importlib.import_module("click.exceptions")


click_exceptions: Any = _click_exceptions()

# Pipes and files get wide lines, so a table never wraps in the middle of an id.
_WIDTH = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS") or 0) or 200


class _OnFirstUse:
    """rich's Console, made when first used: importing rich is a good part of a start that may
    print nothing of its own (`atoll --help`, a command that fails early)."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def _made(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self._made(), name)

    # `with console:` (rich's capture/pager use) looks these up on the type, not via __getattr__.
    def __enter__(self) -> Console:
        return self._made().__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._made().__exit__(*exc)


out = cast("Console", _OnFirstUse(width=_WIDTH, highlight=False))
err = cast("Console", _OnFirstUse(stderr=True, highlight=False))


class Format(StrEnum):
    table = "table"
    json = "json"


FormatOpt = Annotated[
    Format, typer.Option("--format", help="table for people, json for scripts (the API's JSON)")
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")]


def client() -> Client:
    """A client configured from ATOLL_URL/ATOLL_TOKEN or the file `atoll login` wrote."""
    from atoll.client import Client

    return Client()


# --- errors ---------------------------------------------------------------------------------


def fail(message: str) -> NoReturn:
    """Stop with one line on stderr and exit status 1 (something the user asked for failed)."""
    from atoll.client import AtollError

    raise AtollError(message)


def usage(message: str) -> NoReturn:
    """Stop with one line on stderr and exit status 2 (the command line itself is wrong)."""
    raise click_exceptions.UsageError(message)


def print_error(message: str) -> None:
    text = " ".join(message.split())
    err.print(f"error: {text}", style="bold red", markup=False, soft_wrap=True)


def warn(message: str) -> None:
    err.print(f"warning: {message}", style="yellow", markup=False, soft_wrap=True)


def success(message: str) -> None:
    """A short confirmation line for people (table format)."""
    out.print(message, style="green", markup=False, soft_wrap=True)


def confirm(question: str, yes: bool) -> None:
    """Ask before destroying something; without a terminal, insist on --yes."""
    if yes:
        return
    if not sys.stdin.isatty():
        usage(f"{question} Pass --yes to confirm without a prompt")
    if not typer.confirm(question, default=False):
        raise typer.Exit(1)


# --- output ---------------------------------------------------------------------------------


def print_json(data: Any) -> None:
    """Exactly the JSON given, pretty-printed; colored only on a terminal."""
    text = json.dumps(data, indent=2)
    if sys.stdout.isatty() and out.is_terminal:  # a pipe never needs rich
        out.print_json(text)
    else:
        sys.stdout.write(text + "\n")


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={cell(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return ", ".join(cell(v) for v in value) or "-"
    return str(value)


Column = tuple[str, str | Callable[[dict[str, Any]], Any]]


def print_table(
    rows: Iterable[Mapping[str, Any]], columns: Sequence[Column], empty: str = "nothing to show"
) -> None:
    """One row per item; a column is (header, key or function of the item)."""
    rows = list(rows)
    if not rows:
        err.print(empty, style="dim", markup=False)
        return
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold", pad_edge=False, box=None)
    for header, _ in columns:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*(cell(get(dict(row))) if callable(get) else cell(row.get(get)) for _, get in columns))
    out.print(table)


def flatten(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    pairs: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            pairs.extend(flatten(value, name + "."))
        else:
            pairs.append((name, value))
    return pairs


def print_object(data: Mapping[str, Any]) -> None:
    """A key/value table of one object, nested fields as `settings.ide`."""
    from rich.table import Table

    table = Table(show_header=False, show_edge=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in flatten(data):
        table.add_row(key, cell(value))
    out.print(table)


def emit_list(
    items: list[dict[str, Any]], fmt: Format, columns: Sequence[Column], empty: str = "nothing to show"
) -> None:
    """A list command's output: a JSON array of the API objects, or a table."""
    if fmt is Format.json:
        print_json(items)
    else:
        print_table(items, columns, empty)


def emit_one(item: dict[str, Any], fmt: Format) -> None:
    """A get/create/update command's output: the API object as JSON, or a key/value table."""
    if fmt is Format.json:
        print_json(item)
    else:
        print_object(item)


def emit_done(item: dict[str, Any], fmt: Format, message: str) -> None:
    """A create/update command's output: the API object as JSON, or one confirmation line."""
    if fmt is Format.json:
        print_json(item)
    else:
        success(message)


# --- parsing command-line values ------------------------------------------------------------


def parse_labels(values: list[str] | None, option: str = "--label") -> dict[str, str] | None:
    """``--label team=ml --label env=dev`` → {"team": "ml", "env": "dev"}; None when not given."""
    if not values:
        return None
    labels: dict[str, str] = {}
    for v in values:
        key, sep, value = v.partition("=")
        if not sep or not key:
            usage(f"{option} takes KEY=VALUE (got {v!r})")
        labels[key] = value
    return labels


def parse_optional_int(value: str, option: str) -> int | None:
    """A whole number, or ``none`` to clear the value."""
    if value.strip().lower() in ("none", "null", "unlimited"):
        return None
    try:
        return int(value.replace("_", ""))
    except ValueError:
        usage(f"{option} takes a whole number of units or 'none' (got {value!r})")


def parse_bool(value: str, option: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "yes", "on", "1"):
        return True
    if lowered in ("false", "no", "off", "0"):
        return False
    usage(f"{option} takes true or false (got {value!r})")


def drop_none(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}
