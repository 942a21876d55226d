"""Entry point of the `atoll` command. Sub-commands live in sibling modules."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from atoll import __version__

app = typer.Typer(
    name="atoll",
    help="Atoll: self-hosted ML platform. Start with `atoll up`, then `atoll login`.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.command()
def up(
    host: Annotated[str, typer.Option(help="Address to bind (keep 127.0.0.1 behind a proxy)")] = "",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 0,
    data_dir: Annotated[Path | None, typer.Option(help="Where the database and files live")] = None,
) -> None:
    """Run Atoll: API, web UI and controllers in one process (SQLite and local files by default)."""
    from atoll.server import serve
    from atoll.settings import Settings

    overrides: dict[str, object] = {}
    if host:
        overrides["host"] = host
    if port:
        overrides["port"] = port
    if data_dir:
        overrides["data_dir"] = data_dir
    serve(Settings(**overrides))  # type: ignore[arg-type]


@app.command()
def version() -> None:
    """Print Atoll's version."""
    typer.echo(__version__)


def main() -> None:
    app()
