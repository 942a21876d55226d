"""`atoll secret`: project secrets, which jobs and notebooks get as env vars (spec §4.5)."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from atoll.cli import resolve
from atoll.cli.lazy import summary
from atoll.cli.output import Column, Format, FormatOpt, client, confirm, emit_done, emit_list, success, usage

app = typer.Typer(help=summary("secret"), no_args_is_help=True)

ProjectArg = Annotated[str, typer.Option("-p", "--project", help="Project id, name or COMMUNITY/PROJECT")]
COLUMNS: list[Column] = [("ID", "id"), ("NAME", "name"), ("VALUE", "value"), ("UPDATED", "updatedAt")]


def _value(value: str | None, from_env: str | None, stdin: bool) -> str:
    """The value from exactly one source; never from argv by default (shell history, ps)."""
    given = [x for x in (value is not None, from_env is not None, stdin) if x]
    if len(given) > 1:
        usage("give one of --value, --from-env or --stdin")
    if from_env is not None:
        if from_env not in os.environ:
            usage(f"--from-env: environment variable {from_env} is not set")
        return os.environ[from_env]
    if stdin:
        return sys.stdin.read().rstrip("\n")
    if value is not None:
        return value
    return str(typer.prompt("Secret value", hide_input=True))


@app.command("list")
def list_(project: ProjectArg, fmt: FormatOpt = Format.table) -> None:
    """The project's secrets (names only: values are never shown)."""
    with client() as c:
        p = resolve.project(c, project)
        emit_list(c.get(f"/projects/{p['id']}/secrets"), fmt, COLUMNS, "no secrets")


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="2-63 letters, digits, hyphens; becomes the env var name")],
    project: ProjectArg,
    value: Annotated[
        str | None, typer.Option(help="The value (visible in shell history: prefer the prompt)")
    ] = None,
    from_env: Annotated[
        str | None, typer.Option("--from-env", help="Take the value from this env var")
    ] = None,
    stdin: Annotated[bool, typer.Option("--stdin", help="Read the value from standard input")] = False,
    fmt: FormatOpt = Format.table,
) -> None:
    """Create a secret (you are prompted for the value unless you pass one)."""
    secret = _value(value, from_env, stdin)
    with client() as c:
        p = resolve.project(c, project)
        created = c.post(f"/projects/{p['id']}/secrets", {"name": name, "value": secret})
    emit_done(created, fmt, f"Created secret {created['name']} in project {p['name']}")


@app.command()
def update(
    name: Annotated[str, typer.Argument(help="Secret name or id")],
    project: ProjectArg,
    new_name: Annotated[str | None, typer.Option("--name", help="Rename it")] = None,
    value: Annotated[str | None, typer.Option(help="New value")] = None,
    from_env: Annotated[str | None, typer.Option("--from-env")] = None,
    stdin: Annotated[bool, typer.Option("--stdin")] = False,
) -> None:
    """Rename a secret or change its value."""
    body: dict[str, str] = {}
    if new_name:
        body["name"] = new_name
    if value is not None or from_env is not None or stdin:
        body["value"] = _value(value, from_env, stdin)
    if not body:
        usage("nothing to change: give --name and/or a new value")
    with client() as c:
        p = resolve.project(c, project)
        updated = c.patch(f"/projects/{p['id']}/secrets/{name}", body)
    success(f"Updated secret {updated['name']}")


@app.command()
def delete(
    name: Annotated[str, typer.Argument(help="Secret name or id")],
    project: ProjectArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask")] = False,
) -> None:
    """Delete a secret; workloads started later no longer get it."""
    with client() as c:
        p = resolve.project(c, project)
        confirm(f"Delete secret {name} of project {p['name']}?", yes)
        c.delete(f"/projects/{p['id']}/secrets/{name}")
    success(f"Deleted secret {name}")
