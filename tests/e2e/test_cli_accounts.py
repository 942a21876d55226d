"""Signing in and out, API tokens, and the errors people see when that goes wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.cli import Cli
from tests.e2e.conftest import UserFactory
from tests.support.postgres import free_port
from tests.support.server import RunningServer

pytestmark = pytest.mark.e2e


def test_wrong_password_is_one_line_and_saves_nothing(server: RunningServer, tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    line = cli.fail("login", "--url", server.url, "-u", "admin", "--password", "not-the-password")
    assert "wrong username or password" in line
    assert not (tmp_path / "config.json").exists()


def test_not_logged_in_says_so(server: RunningServer, tmp_path: Path) -> None:
    line = Cli(tmp_path, env={"ATOLL_URL": server.url}).fail("project", "list")
    assert "not logged in" in line and "atoll login" in line


def test_an_unreachable_server_is_named(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    line = Cli(tmp_path, env={"ATOLL_URL": url}).fail("whoami")
    assert f"cannot reach Atoll at {url}: is `atoll up` running?" in line


def test_token_create_list_revoke(make_user: UserFactory) -> None:
    bob = make_user("bob")
    created = bob.ok("token", "create", "ci")
    token = created.out.strip().splitlines()[-1]
    assert token.startswith("atl_")
    assert "will not be shown again" in created.err

    listed = {t["name"]: t for t in bob.json("token", "list")}
    assert listed["ci"]["state"] == "ACTIVE" and "token" not in listed["ci"]
    # ATOLL_TOKEN wins over the saved token.
    assert bob.json("whoami", env={"ATOLL_TOKEN": token})["username"] == "bob"

    bob.ok("token", "revoke", "ci")
    assert {t["name"]: t for t in bob.json("token", "list")}["ci"]["state"] == "REVOKED"
    line = bob.fail("whoami", env={"ATOLL_TOKEN": token})
    assert "unknown, expired or revoked" in line and "atoll login" in line
    assert bob.json("whoami")["username"] == "bob"  # the saved token still works


def test_login_with_a_token_then_logout_revokes_it(
    make_user: UserFactory, server: RunningServer, tmp_path: Path
) -> None:
    carol = make_user("carol")
    new = carol.json("token", "create", "laptop", "--expires-in-days", "7")
    laptop = Cli(tmp_path)
    laptop.ok("login", "--url", server.url, "--token", new["token"])
    assert laptop.config()["tokenId"] == new["id"]
    assert laptop.json("whoami")["username"] == "carol"

    laptop.ok("logout")
    assert "token" not in laptop.config()
    assert "not logged in" in laptop.fail("whoami")
    carol.fail("whoami", env={"ATOLL_TOKEN": new["token"]})  # revoked on the server
    assert carol.json("whoami")["username"] == "carol"


def test_a_bad_token_is_refused_at_login(server: RunningServer, tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    line = cli.fail("login", "--url", server.url, "--token", "atl_not-a-real-token")
    assert "unknown, expired or revoked" in line
    assert not (tmp_path / "config.json").exists()


def test_only_admins_create_users(make_user: UserFactory, admin: Cli) -> None:
    dave = make_user("dave")
    line = dave.fail("user", "create", "zed", "--password", "zed-password-1")
    assert "admin" in line
    line = admin.fail("user", "create", "Zed", "--password", "zed-password-1")
    assert line.startswith("error: username: ")
    line = admin.fail("user", "create", "zed", "--password", "short")
    assert line.startswith("error: password: ")
    assert "zed" not in {u["username"] for u in admin.json("user", "list")}
    members = {u["username"] for u in admin.json("user", "list", "--org", "default")}
    assert "dave" in members


def test_version_and_help_still_work(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    assert cli.ok("version").out.strip()
    assert "--port" in cli.ok("up", "--help").out
    assert "login" in cli.ok("--help").out
