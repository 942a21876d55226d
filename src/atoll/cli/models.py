"""`atoll model`: a project's saved models, the source of model nodes (spec §8.1).

Models are saved from notebooks and jobs; a reference is an id, a name (its latest version) or
NAME:VERSION.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer

from atoll.cli import resolve
from atoll.cli.deploy import ProjectOpt
from atoll.cli.lazy import summary
from atoll.cli.output import Column, Format, FormatOpt, YesOpt, client, confirm, emit_list, emit_one, success

app = typer.Typer(help=summary("model"), no_args_is_help=True)

ModelArg = Annotated[str, typer.Argument(help="Model id, name (latest version) or NAME:VERSION")]


def _size(m: dict[str, Any]) -> str:
    size = float(m["size"])
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(m["size"])


COLUMNS: list[Column] = [
    ("NAME", "name"),
    ("VERSION", "version"),
    ("ID", "id"),
    ("FORMAT", "format"),
    ("SIZE", _size),
    ("SOURCE", "source"),
    ("CREATED", "createdAt"),
]


@app.command("list")
def list_(
    project: ProjectOpt,
    name: Annotated[str | None, typer.Option("--name", help="Only the versions of this model")] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Every version of the project's models, newest first per name."""
    with client() as c:
        p = resolve.project(c, project)
        emit_list(c.get(f"/projects/{p['id']}/models", name=name), fmt, COLUMNS, "no models")


@app.command()
def get(model: ModelArg, project: ProjectOpt, fmt: FormatOpt = Format.table) -> None:
    """A model's version, format, size, source and signature (meta.json)."""
    with client() as c:
        p = resolve.project(c, project)
        emit_one(c.get(f"/projects/{p['id']}/models/{quote(model, safe=':')}"), fmt)


@app.command()
def delete(model: ModelArg, project: ProjectOpt, yes: YesOpt = False) -> None:
    """Delete one model version (a name alone means its latest version)."""
    with client() as c:
        p = resolve.project(c, project)
        m = c.get(f"/projects/{p['id']}/models/{quote(model, safe=':')}")
        confirm(f"Delete model {m['name']}:{m['version']} of project {p['name']}?", yes)
        c.delete(f"/projects/{p['id']}/models/{m['id']}")
    success(f"Deleted model {m['name']}:{m['version']}")
