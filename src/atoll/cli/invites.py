"""`atoll invite`: invite links to a community or project, and accepting them (spec §2)."""

from __future__ import annotations

import os
import socket
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

import typer

from atoll.cli import resolve
from atoll.cli.lazy import summary
from atoll.cli.output import Column, Format, FormatOpt, client, emit_list, emit_one, out, success, usage
from atoll.client import URL_ENV, Client, load_config, save_config

app = typer.Typer(help=summary("invite"), no_args_is_help=True)

CommunityOpt = Annotated[str | None, typer.Option("--community", "-c", help="Community id or name")]
ProjectOpt = Annotated[
    str | None, typer.Option("--project", "-p", help="Project id, name or COMMUNITY/PROJECT")
]
COLUMNS: list[Column] = [
    ("ID", "id"),
    ("ROLE", "role"),
    ("STATE", "state"),
    ("USES", lambda i: f"{i['uses']}/{i['maxUses']}"),
    ("EXPIRES", "expiresAt"),
]


def _scope(c: Client, community: str | None, project: str | None) -> resolve.Scope:
    return resolve.scope(
        c, community_ref=community, project_ref=project, allowed=("--community", "--project")
    )


@app.command()
def create(
    role: Annotated[str, typer.Option("--role", help="viewer, developer, editor or admin")],
    community: CommunityOpt = None,
    project: ProjectOpt = None,
    expires_in_days: Annotated[int, typer.Option(help="1-90 days")] = 7,
    max_uses: Annotated[int, typer.Option(help="How many people may use the link")] = 1,
    fmt: FormatOpt = Format.table,
) -> None:
    """Create an invite link (community or project Admins) and print it."""
    with client() as c:
        s = _scope(c, community, project)
        inv = c.post(
            f"{s.path}/invites", {"role": role, "expiresInDays": expires_in_days, "maxUses": max_uses}
        )
    if fmt is Format.json:
        emit_one(inv, fmt)
        return
    success(
        f"Invite to {s.kind} {s.label} as {inv['role']} "
        f"({inv['maxUses']} use(s), expires {inv['expiresAt']}):"
    )
    out.print(inv["url"], markup=False, soft_wrap=True)


@app.command("list")
def list_(community: CommunityOpt = None, project: ProjectOpt = None, fmt: FormatOpt = Format.table) -> None:
    """List the invites of a community or project (the links themselves are never shown again)."""
    with client() as c:
        s = _scope(c, community, project)
        emit_list(c.get(f"{s.path}/invites"), fmt, COLUMNS, f"no invites on {s.kind} {s.label}")


@app.command()
def revoke(
    invite_id: Annotated[str, typer.Argument(help="Invite id (see `atoll invite list`)")],
    community: CommunityOpt = None,
    project: ProjectOpt = None,
) -> None:
    """Revoke an invite so its link stops working."""
    with client() as c:
        s = _scope(c, community, project)
        c.delete(f"{s.path}/invites/{quote(invite_id, safe='')}")
    success(f"Revoked invite {invite_id} to {s.kind} {s.label}")


def _split_link(link: str) -> tuple[str | None, str]:
    """(server URL or None, token) from a link like http://host/invite/TOKEN, or a bare token."""
    link = link.strip()
    if "/invite/" in link:
        head, _, tail = link.partition("/invite/")
        token = tail.split("?")[0].split("#")[0].strip("/")
        parts = urlsplit(head)
        base = f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/") if parts.scheme else None
        return base, token
    if "/" in link or not link:
        usage(f"not an invite link or token: {link!r}")
    return None, link


@app.command()
def accept(
    link: Annotated[
        str,
        typer.Argument(
            help="The invite link, or just its token (an older token that starts with '-' goes after --)"
        ),
    ],
    username: Annotated[
        str | None, typer.Option("--username", "-u", help="Not signed in: create this account and accept")
    ] = None,
    password: Annotated[str | None, typer.Option("--password", help="Password of the new account")] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Accept an invite as yourself, or (with --username) create an account with it and sign in."""
    link_base, token = _split_link(link)
    config = load_config()
    # The saved server wins; a link's own address is used only when none is configured.
    url = os.environ.get(URL_ENV) or config.get("url") or link_base
    if username:
        password = (
            password
            if password is not None
            else typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        )
        body = {"username": username, "password": password}
        with Client(url, anonymous=True) as c:
            info: dict[str, Any] = c.post(f"/invites/{quote(token, safe='')}/accept", body)
        # A fresh client: the accept answer sets a browser session cookie, and a cookie-borne
        # session would make the server ask this sign-in request for a CSRF token.
        with Client(url, anonymous=True) as c:
            name = f"cli@{socket.gethostname()}"[:64]
            new = c.post("/auth/tokens", {**body, "name": name})
        save_config({"url": c.url, "token": new["token"], "tokenId": new["id"], "username": username})
        if fmt is Format.table:
            success(f"Created account {username} and logged in at {c.url}")
    else:
        if password:
            usage("--password goes with --username")
        with Client(url) as c:
            info = c.post(f"/invites/{quote(token, safe='')}/accept", {})
    if fmt is Format.json:
        emit_one(info, fmt)
    else:
        kind = "billing account" if info["resourceType"] == "billingAccount" else info["resourceType"]
        success(f"You are now {info['role']} on {kind} {info['resourceName']} ({info['resourceId']})")
