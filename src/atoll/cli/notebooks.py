"""`atoll notebook open|stop|status|ide-link`: a project's JupyterLab (spec §3.2, §3.3, §4.1)."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from atoll.cli import resolve
from atoll.cli.lazy import summary
from atoll.cli.output import Format, FormatOpt, client, emit_one, err, fail, success
from atoll.client import Client
from atoll.states import NOTEBOOK_FINISHED, NotebookState

app = typer.Typer(help=summary("notebook"), no_args_is_help=True)

ProjectArg = Annotated[str, typer.Option("-p", "--project", help="Project id, name or COMMUNITY/PROJECT")]
FINISHED = (*NOTEBOOK_FINISHED, NotebookState.NONE)


def _timeline(nb: dict[str, Any]) -> str:
    parts = []
    for p in nb.get("timeline", []):
        secs = p.get("seconds")
        parts.append(f"{p['phase']} {secs:.1f}s" if secs is not None else p["phase"])
    return " → ".join(parts)


def _describe(c: Client, nb: dict[str, Any]) -> None:
    typer.echo(f"state:         {nb['state']}")
    if nb.get("configuration"):
        typer.echo(f"configuration: {nb['configuration']}")
    if nb.get("detail"):
        typer.echo(f"detail:        {nb['detail']}")
    if nb.get("url"):
        typer.echo(f"url:           {c.url.rstrip('/')}{nb['url']}")
    if nb.get("timeline"):
        typer.echo(f"timeline:      {_timeline(nb)}")
    idle = nb.get("idle")
    if idle and idle.get("secondsLeft") is not None:
        left = int(idle["secondsLeft"])
        typer.echo(
            f"idle release:  in {left // 3600}h{left % 3600 // 60:02d}m{left % 60:02d}s "
            f"(vmInactivityTimeout {idle['timeout']}; last activity: {idle.get('lastActivity') or '-'})"
        )


@app.command("open")
def open_(
    project: ProjectArg,
    configuration: Annotated[
        str | None, typer.Option("-c", "--configuration", help="Default: the project's defaultConfiguration")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until JupyterLab answers")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for it", min=1)] = 600,
    fmt: FormatOpt = Format.table,
) -> None:
    """Open the project's JupyterLab and print its URL (sign in to Atoll in the browser to use it)."""
    with client() as c:
        p = resolve.project(c, project)
        nb = c.post(f"/projects/{p['id']}/notebook/open", {"configuration": configuration})
        shown = ""
        deadline = time.monotonic() + timeout
        with err.status("opening JupyterLab…") as status:
            while wait and nb["state"] not in (NotebookState.READY, *FINISHED):
                line = f"{nb['state'].lower()}: {nb.get('detail') or ''}  [{_timeline(nb)}]"
                if line != shown:
                    status.update(line)
                    shown = line
                if time.monotonic() > deadline:
                    fail(f"JupyterLab is still {nb['state']} after {timeout:.0f} s ({nb.get('detail')})")
                time.sleep(0.5)
                nb = c.get(f"/projects/{p['id']}/notebook")
        if nb["state"] in FINISHED:
            fail(f"JupyterLab did not start: {nb.get('detail') or nb['state']}")
        if fmt is Format.json:
            emit_one(nb, fmt)
            return
        if nb["state"] == NotebookState.READY:
            success(f"JupyterLab of {p['name']} is ready on {nb['configuration']} ({_timeline(nb)})")
            typer.echo(f"{c.url.rstrip('/')}{nb['url']}")
        else:
            _describe(c, nb)


@app.command()
def stop(project: ProjectArg, fmt: FormatOpt = Format.table) -> None:
    """Stop the project's JupyterLab and its kernels (files and installed packages stay)."""
    with client() as c:
        p = resolve.project(c, project)
        nb = c.post(f"/projects/{p['id']}/notebook/stop")
        if fmt is Format.json:
            emit_one(nb, fmt)
        elif nb["state"] in FINISHED:
            success(f"JupyterLab of {p['name']} is not running")
        else:
            success(f"Stopping JupyterLab of {p['name']}")


@app.command()
def status(project: ProjectArg, fmt: FormatOpt = Format.table) -> None:
    """The server's state, configuration, URL, spawn timeline and time left before idle release."""
    with client() as c:
        p = resolve.project(c, project)
        nb = c.get(f"/projects/{p['id']}/notebook")
        if fmt is Format.json:
            emit_one(nb, fmt)
        else:
            _describe(c, nb)


@app.command("ide-link")
def ide_link(
    project: ProjectArg,
    expires_in_days: Annotated[
        int | None, typer.Option("--expires-in-days", help="1-3650 (default 30)", min=1, max=3650)
    ] = 30,
    fmt: FormatOpt = Format.table,
) -> None:
    """A link for an external IDE (VS Code: "Existing Jupyter Server"): the URL and a token that
    opens this project's JupyterLab and nothing else. Revoke it with `atoll token revoke`."""
    with client() as c:
        p = resolve.project(c, project)
        link = c.post(f"/projects/{p['id']}/notebook/ide-link", {"expiresInDays": expires_in_days})
    if fmt is Format.json:
        emit_one(link, fmt)
        return
    typer.echo(link["urlWithToken"])
    expiry = f", expires {link['expiresAt']}" if link.get("expiresAt") else ""
    err.print(
        f"Paste it into VS Code's Jupyter: Select Kernel › Existing Jupyter Server. The project's JupyterLab "
        f"must be open (atoll notebook open). Token {link['tokenId']}{expiry}; shown once; "
        f"revoke: atoll token revoke {link['tokenId']}",
        markup=False,
        soft_wrap=True,
    )
