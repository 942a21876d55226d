"""`atoll env`: the environments notebooks and jobs run in — the installation's built-in ones and
a project's own, made from requirements alone or on top of a built-in one (spec §4.2, issue 17)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any
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
    emit_done,
    emit_list,
    emit_one,
    success,
    usage,
)
from atoll.client import AtollError, Client
from atoll.errors import Invalid
from atoll.jobspec.config import PipOptions
from atoll.jobspec.requirements import parse_requirements
from atoll.states import EnvironmentStatus

app = typer.Typer(help=summary("env"), no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="Environment name or id, e.g. datascience")]
ProjectOpt = Annotated[
    str | None, typer.Option("--project", "-p", help="Project id or name (its own environments)")
]
WAIT_S = 3600  # the longest a build waited for may take before `--wait` gives up


def _size(env: dict[str, Any]) -> str:
    size = env.get("sizeBytes")
    return f"{size / 1e9:.1f} GB" if size else "-"


def _status(env: dict[str, Any]) -> str:
    status = str(env["status"]).lower()
    return f"{status}: {env['detail']}" if env.get("detail") else status


COLUMNS: list[Column] = [
    ("NAME", "name"),
    ("OF", lambda e: "built-in" if e.get("builtIn") else "project"),
    ("BASE", lambda e: e.get("base") or ""),
    ("PYTHON", "pythonVersion"),
    ("DEFAULT", lambda e: "yes" if e.get("default") else ""),
    ("PACKAGES", "packagesLocked"),
    ("SIZE", _size),
    ("STATUS", _status),
]


def _find(c: Client, ref: str, project: str | None) -> dict[str, Any]:
    params = {"projectId": resolve.project(c, project)["id"]} if project else {}
    found: dict[str, Any] = c.get(f"/environments/{quote(ref, safe='')}", **params)
    return found


@app.command("list")
def list_(project: ProjectOpt = None, fmt: FormatOpt = Format.table) -> None:
    """The built-in environments, and with -p the project's own, each with its build here."""
    with client() as c:
        params = {"projectId": resolve.project(c, project)["id"]} if project else {}
        emit_list(c.get("/environments", **params), fmt, COLUMNS, "no environments")


@app.command()
def get(name: NameArg, project: ProjectOpt = None, fmt: FormatOpt = Format.table) -> None:
    """Show one environment: what it holds, its size and its build."""
    with client() as c:
        emit_one(_find(c, name, project), fmt)


@app.command()
def log(name: NameArg, project: ProjectOpt = None) -> None:
    """The last build's output (uv's, in full, when the build failed)."""
    with client() as c:
        env = _find(c, name, project)
        typer.echo(c.get(f"/environments/{env['id']}/log")["log"], nl=False)


def _wait(c: Client, env: dict[str, Any]) -> dict[str, Any]:
    """Follow the build until READY or FAILED, saying what it does as that changes."""
    said = ""
    deadline = time.monotonic() + WAIT_S
    while env["status"] not in (EnvironmentStatus.READY, EnvironmentStatus.FAILED):
        line = _status(env)
        if line != said:
            typer.echo(f"{env['name']}: {line}", err=True)
            said = line
        if time.monotonic() > deadline:
            raise AtollError(f"{env['name']} is still {env['status'].lower()} after {WAIT_S} s")
        time.sleep(1)
        env = c.get(f"/environments/{env['id']}")
    if env["status"] == EnvironmentStatus.FAILED:
        where = f" -p {env['projectId']}" if env.get("projectId") else ""
        log_cmd = f"atoll env log {env['name']}{where}"
        raise AtollError(f"{env['name']} failed to build: {env['detail']} (uv's output: `{log_cmd}`)")
    return env


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="A name for it, unique in the project")],
    project: Annotated[str, typer.Option("--project", "-p", help="Project id or name")],
    requirements_file: Annotated[
        Path | None, typer.Option("--requirements", "-r", help="A requirements.txt (pins, ranges)")
    ] = None,
    requirement: Annotated[
        list[str] | None,
        typer.Option("--requirement", help="One requirement, e.g. polars==1.9; repeat for several"),
    ] = None,
    base: Annotated[
        str | None, typer.Option("--base", help="A built-in environment to add the requirements to")
    ] = None,
    python: Annotated[
        str | None, typer.Option("--python", help="Python major.minor (default: the base's)")
    ] = None,
    description: Annotated[str, typer.Option("--description", help="What it is for")] = "",
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the build")] = True,
    fmt: FormatOpt = Format.table,
) -> None:
    """Make a project environment (project Editors) and build it: -r requirements.txt --base datascience."""
    reqs = list(requirement or [])
    if requirements_file is not None:
        try:
            text = requirements_file.read_text()
        except OSError as e:
            usage(f"--requirements: cannot read {requirements_file}: {e.strerror or e}")
        try:
            parsed = parse_requirements(text, str(requirements_file), field="--requirements")
        except Invalid as e:
            usage(e.detail)
        if parsed.pip != PipOptions():
            usage("--requirements: pip options (indexes, --no-deps) are not supported for environments yet")
        reqs = [*parsed.requirements, *reqs]
    if not reqs and base is None:
        usage("give requirements (-r FILE or --requirement) or --base")
    body: dict[str, Any] = {"name": name, "requirements": reqs, "description": description}
    if base is not None:
        body["base"] = base
    if python is not None:
        body["pythonVersion"] = python
    with client() as c:
        pid = resolve.project(c, project)["id"]
        env = c.post(f"/projects/{pid}/environments", body)
        if wait:
            env = _wait(c, env)
    emit_done(env, fmt, f"environment {env['name']} {str(env['status']).lower()}")


@app.command()
def build(
    name: NameArg, project: ProjectOpt = None, wait: bool = True, fmt: FormatOpt = Format.table
) -> None:
    """Build a failed environment again (project Editors; built-in ones: admins)."""
    with client() as c:
        env = c.post(f"/environments/{_find(c, name, project)['id']}:build")
        if wait:
            env = _wait(c, env)
    emit_done(env, fmt, f"environment {env['name']} {str(env['status']).lower()}")


@app.command()
def delete(name: NameArg, project: ProjectOpt = None, yes: YesOpt = False) -> None:
    """Delete a project environment (not the one the project runs in by default)."""
    with client() as c:
        env = _find(c, name, project)
        confirm(f"Delete environment {env['name']}?", yes)
        c.delete(f"/environments/{env['id']}")
    success(f"environment {env['name']} deleted")
