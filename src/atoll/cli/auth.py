"""`atoll login`, `atoll logout`, `atoll whoami`: who the CLI acts as, kept in the config file."""

from __future__ import annotations

import os
import socket
from typing import Annotated, Any

import typer

from atoll.cli.output import Format, FormatOpt, emit_done, emit_one, success, usage, warn
from atoll.client import (
    TOKEN_ENV,
    AtollError,
    Client,
    config_path,
    load_config,
    resolve_url,
    save_config,
)


def _describe(user: dict[str, Any], url: str) -> str:
    role = " (installation admin)" if user.get("isAdmin") else ""
    return f"{user['username']}{role} at {url}"


def login(
    url: Annotated[
        str | None,
        typer.Option(help="Server URL (default: ATOLL_URL, the saved one, or http://127.0.0.1:8800)"),
    ] = None,
    username: Annotated[
        str | None, typer.Option("--username", "-u", help="Your username (prompted for if missing)")
    ] = None,
    password: Annotated[
        str | None, typer.Option("--password", help="Your password (prompted for, hidden, if missing)")
    ] = None,
    token: Annotated[
        str | None, typer.Option(help="Store this API token instead of signing in with a password")
    ] = None,
    token_name: Annotated[str | None, typer.Option(help="Name of the token created for this machine")] = None,
    expires_in_days: Annotated[int, typer.Option(help="Days until the new token expires")] = 90,
    sso: Annotated[
        bool,
        typer.Option("--sso", help="Sign in through your organization's identity provider, in a browser"),
    ] = False,
    provider: Annotated[
        str | None, typer.Option(help="With --sso: the identity provider's name, where there are several")
    ] = None,
    browser: Annotated[
        bool, typer.Option("--browser/--no-browser", help="With --sso: open the browser (else print the URL)")
    ] = True,
    sso_timeout: Annotated[
        float, typer.Option(help="With --sso: seconds to wait for the browser's sign-in", min=5, max=3600)
    ] = 300,
    fmt: FormatOpt = Format.table,
) -> None:
    """Sign in: trade a username and password (or check a token) and save URL + token."""
    config = load_config()
    base = resolve_url(url, config)
    token_id: str | None = None
    name = token_name or f"cli@{socket.gethostname()}"[:64]
    if sso:
        if token or username or password:
            usage("give --sso, or --token, or --username/--password: one way to sign in")
        from atoll.cli.sso_login import sso_token

        new = sso_token(base, provider, name, expires_in_days, browser, sso_timeout)
        token, token_id = new["token"], new["id"]
        with Client(base, token) as c:
            me = c.get("/users/me")
    elif token:
        if username or password:
            usage("give --token, or --username/--password, not both")
        with Client(base, token) as c:
            me = c.get("/users/me")
            # Find the token's id, so `atoll logout` can revoke it.
            prefix = token[:10]
            token_id = next((t["id"] for t in c.paginate("/tokens") if t["prefix"] == prefix), None)
    else:
        username = username or typer.prompt("Username")
        password = password if password is not None else typer.prompt("Password", hide_input=True)
        body = {"username": username, "password": password, "name": name, "expiresInDays": expires_in_days}
        with Client(base, anonymous=True) as anonymous:
            new = anonymous.post("/auth/tokens", body)
        token, token_id = new["token"], new["id"]
        with Client(base, token) as c:
            me = c.get("/users/me")
    save_config({"url": base, "token": token, "tokenId": token_id, "username": me["username"]})
    if os.environ.get(TOKEN_ENV):
        warn(f"{TOKEN_ENV} is set in your environment and takes precedence over the saved token")
    emit_done(me, fmt, f"Logged in as {_describe(me, base)}; saved to {config_path()}")


def logout() -> None:
    """Revoke the saved token on the server (when possible) and forget it."""
    config = load_config()
    token, token_id = config.get("token"), config.get("tokenId")
    if not token:
        success("Not logged in.")
        return
    if token_id:
        try:
            with Client(config.get("url"), token) as c:
                c.delete(f"/tokens/{token_id}")
        except AtollError as e:
            warn(f"could not revoke the token on the server: {e.message()}")
    else:
        warn("the saved token was not created by `atoll login`; it stays valid (see `atoll token list`)")
    for key in ("token", "tokenId", "username"):
        config.pop(key, None)
    save_config(config)
    success(f"Logged out of {config.get('url', 'Atoll')}.")


def whoami(fmt: FormatOpt = Format.table) -> None:
    """Show who the CLI acts as, and where."""
    with Client() as c:
        me = c.get("/users/me")
        if fmt is Format.json:
            emit_one(me, fmt)
            return
        typer.echo(_describe(me, c.url))
