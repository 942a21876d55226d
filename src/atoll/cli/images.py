"""`atoll image`: a project's Docker images (spec §4.3) — built from a Dockerfile, the build's log
streamed, activated for the project's notebooks, named by jobs (env.docker) and nodes (image)."""

from __future__ import annotations

import sys
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
from atoll.states import ImageStatus

app = typer.Typer(help=summary("image"), no_args_is_help=True)

RefArg = Annotated[str, typer.Argument(help="Image id, or name[:tag] in the project")]
ProjectOpt = Annotated[str | None, typer.Option("--project", "-p", help="Project id or name")]
WAIT_S = 7200  # the longest `--wait` follows a build
MAX_DOCKERFILE = 64 * 1024


def _size(img: dict[str, Any]) -> str:
    size = img.get("sizeBytes")
    return f"{size / 1e6:.0f} MB" if size else "-"


def _status(img: dict[str, Any]) -> str:
    status = str(img["status"]).lower()
    return f"{status}: {img['detail']}" if img.get("detail") else status


COLUMNS: list[Column] = [
    ("ID", "id"),
    ("NAME", lambda i: f"{i['name']}:{i['tag']}"),
    ("ACTIVE", lambda i: "yes" if i.get("active") else ""),
    ("PYTHON", "pythonVersion"),
    ("SIZE", _size),
    ("STATUS", _status),
]


def _find(c: Client, ref: str, project: str | None) -> dict[str, Any]:
    params = {"projectId": resolve.project(c, project)["id"]} if project else {}
    found: dict[str, Any] = c.get(f"/images/{quote(ref, safe='')}", **params)
    return found


@app.command("list")
def list_(
    project: Annotated[str, typer.Option("--project", "-p", help="Project id or name")],
    fmt: FormatOpt = Format.table,
) -> None:
    """The project's images, which one is active, and their builds."""
    with client() as c:
        pid = resolve.project(c, project)["id"]
        emit_list(c.get(f"/projects/{pid}/images"), fmt, COLUMNS, "no images")


@app.command()
def get(ref: RefArg, project: ProjectOpt = None, fmt: FormatOpt = Format.table) -> None:
    """Show one image: its Dockerfile, where it is kept, its build."""
    with client() as c:
        emit_one(_find(c, ref, project), fmt)


def _follow(c: Client, img: dict[str, Any], stream: bool) -> dict[str, Any]:
    """Print the build's output as it comes (to stderr) until it ends; the image as it ended."""
    offset, deadline = 0, time.monotonic() + WAIT_S
    while True:
        part = c.get(f"/images/{img['id']}/log", offset=offset)
        if stream and part["log"]:
            sys.stderr.write(part["log"])
            sys.stderr.flush()
        offset = part["nextOffset"]
        if part["status"] in (ImageStatus.READY, ImageStatus.FAILED) and not part["log"]:
            break
        if time.monotonic() > deadline:
            raise AtollError(f"{img['name']}:{img['tag']} is still {part['status'].lower()} after {WAIT_S} s")
        if not part["log"]:
            time.sleep(1)
    img = c.get(f"/images/{img['id']}")
    if img["status"] == ImageStatus.FAILED:
        step = (
            f" at {img['failedStep']}"
            if img.get("failedStep") and img["failedStep"] not in img["detail"]
            else ""
        )
        raise AtollError(
            f"{img['name']}:{img['tag']} failed to build{step}: {img['detail']} "
            f"(the log: atoll image log {img['id']})"
        )
    return img


@app.command()
def log(
    ref: RefArg,
    project: ProjectOpt = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Follow a build in progress")] = False,
) -> None:
    """The build's output (as it comes with --follow)."""
    with client() as c:
        img = _find(c, ref, project)
        if follow:
            try:
                _follow(c, img, stream=True)
            except AtollError:
                pass  # the log said it
            return
        typer.echo(c.get(f"/images/{img['id']}/log")["log"], nl=False)


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="Repository name, e.g. tensorflow")],
    project: Annotated[str, typer.Option("--project", "-p", help="Project id or name")],
    dockerfile: Annotated[
        Path, typer.Option("--dockerfile", "-f", help="The Dockerfile ('-': standard input)")
    ],
    tag: Annotated[str, typer.Option("--tag", "-t", help="Its tag; images are immutable")] = "latest",
    description: Annotated[str, typer.Option("--description", help="What it is for")] = "",
    username: Annotated[
        str | None, typer.Option("--username", help="For a private base image's registry")
    ] = None,
    password_secret: Annotated[
        str | None,
        typer.Option("--password-secret", help="The project secret holding that registry's password"),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the build, its log streamed")] = True,
    fmt: FormatOpt = Format.table,
) -> None:
    """Build an image from a Dockerfile (project Editors): atoll image create NAME -p P -f Dockerfile."""
    try:
        text = sys.stdin.read(MAX_DOCKERFILE + 1) if str(dockerfile) == "-" else dockerfile.read_text()
    except (OSError, UnicodeDecodeError) as e:
        usage(f"--dockerfile: cannot read {dockerfile}: {getattr(e, 'strerror', None) or e}")
    if len(text.encode()) > MAX_DOCKERFILE:
        usage(f"--dockerfile: at most {MAX_DOCKERFILE // 1024} KiB")
    body: dict[str, Any] = {"name": name, "tag": tag, "dockerfile": text, "description": description}
    if username is not None or password_secret is not None:
        body["username"], body["passwordSecret"] = username, password_secret
    with client() as c:
        pid = resolve.project(c, project)["id"]
        img = c.post(f"/projects/{pid}/images", body)
        if wait:
            img = _follow(c, img, stream=fmt == Format.table)
    emit_done(img, fmt, f"image {img['name']}:{img['tag']} {str(img['status']).lower()} ({img['id']})")


@app.command()
def build(ref: RefArg, project: ProjectOpt = None, wait: bool = True, fmt: FormatOpt = Format.table) -> None:
    """Build a failed image again."""
    with client() as c:
        img = c.post(f"/images/{_find(c, ref, project)['id']}:build")
        if wait:
            img = _follow(c, img, stream=fmt == Format.table)
    emit_done(img, fmt, f"image {img['name']}:{img['tag']} {str(img['status']).lower()}")


@app.command()
def activate(ref: RefArg, project: ProjectOpt = None) -> None:
    """The project's notebooks run inside this image from their next start."""
    with client() as c:
        img = _find(c, ref, project)
        c.post(f"/images/{img['id']}:activate")
    success(f"image {img['name']}:{img['tag']} active: notebooks started from now on run inside it")


@app.command()
def deactivate(project: Annotated[str, typer.Option("--project", "-p", help="Project id or name")]) -> None:
    """The project's notebooks run in its environment again."""
    with client() as c:
        pid = resolve.project(c, project)["id"]
        c.post(f"/projects/{pid}/images:deactivate")
    success("no active image: notebooks started from now on run in the project's environment")


@app.command()
def delete(ref: RefArg, project: ProjectOpt = None, yes: YesOpt = False) -> None:
    """Delete an image (not the active one)."""
    with client() as c:
        img = _find(c, ref, project)
        confirm(f"Delete image {img['name']}:{img['tag']}?", yes)
        c.delete(f"/images/{img['id']}")
    success(f"image {img['name']}:{img['tag']} deleted")
