"""`atoll dataset`: a project's read-only datasets, made by jobs' `output-datasets` (spec §4.6, §5.2).

A job mounts one with `datasets: [<id>]` (or `[{<id>: {var: NAME}}]`) in its config.yaml.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer

from atoll.cli import resolve
from atoll.cli.deploy import ProjectOpt
from atoll.cli.lazy import summary
from atoll.cli.output import Column, Format, FormatOpt, YesOpt, client, confirm, emit_list, emit_one, success

app = typer.Typer(help=summary("dataset"), no_args_is_help=True)

DatasetArg = Annotated[str, typer.Argument(help="Dataset id or name")]


def gb(size_bytes: int) -> str:
    """A size as DataSphere's CLI prints dataset sizes."""
    return f"{size_bytes / 1024**3:.2f} Gb"


def _labels(d: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(d["labels"].items()))


COLUMNS: list[Column] = [
    ("NAME", "name"),
    ("ID", "id"),
    ("SIZE", lambda d: gb(d["sizeBytes"])),
    ("DECLARED", lambda d: f"{d['sizeGb']} Gb"),
    ("JOB", "jobId"),
    ("LABELS", _labels),
    ("CREATED", "createdAt"),
]


@app.command("list")
def list_(project: ProjectOpt, fmt: FormatOpt = Format.table) -> None:
    """The project's datasets."""
    with client() as c:
        p = resolve.project(c, project)
        emit_list(list(c.paginate(f"/projects/{p['id']}/datasets")), fmt, COLUMNS, "no datasets")


@app.command()
def get(dataset: DatasetArg, project: ProjectOpt, fmt: FormatOpt = Format.table) -> None:
    """A dataset's size, labels and the job that made it."""
    with client() as c:
        p = resolve.project(c, project)
        emit_one(c.get(f"/projects/{p['id']}/datasets/{quote(dataset, safe='')}"), fmt)


@app.command()
def delete(dataset: DatasetArg, project: ProjectOpt, yes: YesOpt = False) -> None:
    """Delete a dataset and its files."""
    with client() as c:
        p = resolve.project(c, project)
        d = c.get(f"/projects/{p['id']}/datasets/{quote(dataset, safe='')}")
        confirm(f"Delete dataset {d['name']} ({d['id']}) of project {p['name']}?", yes)
        c.delete(f"/projects/{p['id']}/datasets/{d['id']}")
    success(f"Deleted dataset {d['name']}")
