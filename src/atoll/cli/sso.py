"""`atoll sso`: the identity providers users sign in with (installation admins), and ending a
user's single sign-on sessions (organization admins)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer

from atoll.cli import resolve
from atoll.cli.lazy import summary
from atoll.cli.output import Column, Format, FormatOpt, client, drop_none, emit_done, emit_list, fail, success

app = typer.Typer(help=summary("sso"), no_args_is_help=True)

COLUMNS: list[Column] = [
    ("NAME", "name"),
    ("SHOWN AS", "displayName"),
    ("ISSUER", "issuer"),
    ("CLIENT ID", "clientId"),
    ("ORGANIZATION", "organizationId"),
    ("GROUPS CLAIM", "groupsClaim"),
    ("ENABLED", "enabled"),
    ("SET IN", "managedBy"),
]


@app.command("list")
def list_(fmt: FormatOpt = Format.table) -> None:
    """The identity providers, with the redirect URI to register at each."""
    with client() as c:
        rows = c.get("/identity-providers")
        emit_list(rows, fmt, [*COLUMNS, ("REDIRECT URI", "redirectUri")], "no identity providers")


@app.command()
def add(
    name: Annotated[str, typer.Argument(help="Short name, in URLs and `atoll login --sso --provider`")],
    issuer: Annotated[str, typer.Option(help="The provider's issuer URL (discovery is read from it)")],
    client_id: Annotated[str, typer.Option(help="Atoll's client id at the provider")],
    org: Annotated[str, typer.Option("--org", help="The organization new users join")],
    client_secret: Annotated[
        str | None, typer.Option(help="Atoll's client secret (prompted for, hidden, if missing)")
    ] = None,
    display_name: Annotated[str, typer.Option(help="The button says 'Sign in with <this>'")] = "",
    scopes: Annotated[str, typer.Option(help="Scopes to ask for")] = "openid profile email",
    groups_claim: Annotated[
        str, typer.Option(help="The claim listing the user's groups ('' : no sync)")
    ] = "groups",
    username_claim: Annotated[
        str, typer.Option(help="The claim new users' Atoll username comes from (e.g. email)")
    ] = "preferred_username",
    admin_group: Annotated[
        list[str] | None, typer.Option("--admin-group", help="Members of this provider group are org admins")
    ] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Add an OpenID Connect provider (installation admins)."""
    if client_secret is None:
        client_secret = typer.prompt("Client secret (empty for a public client)", default="", hide_input=True)
    with client() as c:
        body: dict[str, Any] = {
            "name": name,
            "displayName": display_name,
            "issuer": issuer,
            "clientId": client_id,
            "clientSecret": client_secret,
            "scopes": scopes,
            "organizationId": resolve.organization(c, org)["id"],
            "groupsClaim": groups_claim,
            "adminGroups": admin_group or [],
            "usernameClaim": username_claim,
        }
        row = c.post("/identity-providers", drop_none(body))
        emit_done(
            row, fmt, f"Identity provider {row['name']} added; register {row['redirectUri']} at the provider"
        )


@app.command()
def remove(name: Annotated[str, typer.Argument(help="The provider's name or id")]) -> None:
    """Remove a provider: its users keep their accounts but can no longer sign in through it."""
    with client() as c:
        c.delete(f"/identity-providers/{quote(name, safe='')}")  # the API takes a name or an id
    success(f"Identity provider {name} removed.")


@app.command("end-sessions")
def end_sessions(
    user: Annotated[str, typer.Argument(help="The user's id or username")],
    fmt: FormatOpt = Format.table,
) -> None:
    """End a user's browser sessions and revoke the tokens that came through single sign-on."""
    with client() as c:
        uid = user
        if not resolve.looks_like_id(user, "usr"):
            found = [u for u in c.paginate("/users") if u["username"] == user]
            if not found:
                fail(f"user {user!r} not found")
            uid = found[0]["id"]
        done = c.post(f"/users/{uid}:end-sso-sessions")
        emit_done(
            done,
            fmt,
            f"{user}: {done['sessionsEnded']} sessions ended, {done['tokensRevoked']} SSO tokens revoked",
        )
