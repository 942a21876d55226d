"""Entry point of the `atoll` command. Sub-commands live in sibling modules, one per noun.

Errors never show a traceback: an API or connection error is one red line on stderr and
exit status 1; a wrong command line is one red line and exit status 2.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from atoll import __version__
from atoll.cli.lazy import ROOT, lazy_group
from atoll.cli.output import click_exceptions, print_error

# Every noun's module is imported when that noun is used (atoll/cli/lazy.py): a start stays cheap.
app = typer.Typer(
    cls=lazy_group(ROOT),
    # Plain help here: rich's help renderer (and the markdown parser it imports) would double
    # the time `atoll --help` takes. A noun's own help (`atoll job --help`) is rich.
    rich_markup_mode=None,
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
    """Run Atoll: API, web UI and controllers.

    One process; SQLite and local files by default, ATOLL_* variables choose otherwise
    (docs/admin.md)."""
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
def down(
    data_dir: Annotated[Path | None, typer.Option(help="Where the database and files live")] = None,
) -> None:
    """Stop the data plane (HAProxy).

    It keeps serving aliases and nodes after `atoll up` exits; the next `atoll up` adopts it."""
    from atoll.dataplane.proxy import HAProxyPlane
    from atoll.settings import Settings

    settings = Settings(**({"data_dir": data_dir} if data_dir else {}))  # type: ignore[arg-type]
    plane = HAProxyPlane(settings.data_dir / "gateway", "", "", 0)
    pid = plane.keeper_pid()
    if pid is None:
        typer.echo("the data plane is not running")
        return
    plane.stop()
    typer.echo(f"stopped the data plane (keeper pid {pid}); `atoll up` starts it again")


@app.command()
def version() -> None:
    """Print Atoll's version."""
    typer.echo(__version__)


def run(args: list[str] | None = None) -> int:
    """Run the CLI and return its exit status, turning every error into one line."""
    try:
        result = app(args=args, prog_name="atoll", standalone_mode=False)
    except click_exceptions.NoArgsIsHelpError:
        return 2  # `atoll project` alone: Typer has printed the help already
    except click_exceptions.UsageError as e:
        where = e.ctx.command_path if e.ctx is not None else "atoll"
        print_error(f"{where}: {e.format_message()} (see `{where} --help`)")
        return 2
    except typer.TyperException as e:  # the other Click exceptions (file errors, …)
        print_error(e.format_message())
        return int(getattr(e, "exit_code", 1))
    except (typer.Abort, KeyboardInterrupt):
        print_error("aborted")
        return 130
    except Exception as e:
        # atoll.client (and httpx behind it) is imported only by commands that talk to a server.
        client = sys.modules.get("atoll.client")
        if client is not None and isinstance(e, client.AtollError):
            print_error(e.message())
            return 1
        # A bug or an environment problem (e.g. an unwritable config dir): still one line,
        # with the traceback one variable away.
        if os.environ.get("ATOLL_DEBUG"):
            raise
        print_error(f"{type(e).__name__}: {e} (set ATOLL_DEBUG=1 to see the traceback)")
        return 1
    return result if isinstance(result, int) else 0


def main() -> None:
    sys.exit(run())
