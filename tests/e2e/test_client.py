"""`atoll.client`, the HTTP client the CLI and the SDK share, against the real server."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from atoll.client import AtollError, Client, config_path, load_config, save_config
from tests.support.postgres import free_port
from tests.support.server import RunningServer

pytestmark = pytest.mark.e2e


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No ATOLL_URL/ATOLL_TOKEN from the outside, and a config dir of our own."""
    monkeypatch.delenv("ATOLL_URL", raising=False)
    monkeypatch.delenv("ATOLL_TOKEN", raising=False)
    monkeypatch.setenv("ATOLL_CONFIG_DIR", str(tmp_path))
    return tmp_path


def test_settings_come_from_arguments_then_env_then_the_config_file(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, server: RunningServer
) -> None:
    path = save_config({"url": "http://config.invalid:1", "token": "from-config"})
    assert path == isolated / "config.json" == config_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_config()["token"] == "from-config"
    with Client() as c:
        assert (c.url, c.token) == ("http://config.invalid:1", "from-config")
    monkeypatch.setenv("ATOLL_URL", server.url + "/api/v1/")
    monkeypatch.setenv("ATOLL_TOKEN", server.admin_token)
    with Client() as c:
        assert (c.url, c.token) == (server.url, server.admin_token)
        assert c.get("/users/me")["username"] == "admin"
    with Client("http://explicit.invalid:2", "explicit") as c:
        assert (c.url, c.token) == ("http://explicit.invalid:2", "explicit")
    with Client(anonymous=True) as c:
        assert c.token is None


def test_problem_json_becomes_an_atoll_error_naming_the_field(isolated: Path, server: RunningServer) -> None:
    with Client(server.url, server.admin_token) as c:
        org = c.get("/organizations/default")
        with pytest.raises(AtollError) as caught:
            c.post("/communities", {"organizationId": org["id"], "name": "Not Valid"})
    e = caught.value
    assert e.status == 422 and e.title == "Invalid input"
    assert [f.field for f in e.errors] == ["name"]
    assert e.message().startswith("name: name must be")


def test_paginate_follows_next_page_tokens(isolated: Path, server: RunningServer) -> None:
    with Client(server.url, server.admin_token) as c:
        made = {c.post("/tokens", {"name": f"page-{i}"})["id"] for i in range(3)}
        first = c.get("/tokens", pageSize=2)
        assert len(first["items"]) == 2 and first["nextPageToken"]
        seen = [t["id"] for t in c.paginate("/tokens", page_size=2)]
    assert len(seen) == len(set(seen))
    assert made <= set(seen)


def test_connection_errors_say_what_to_do(isolated: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url, "whatever") as c, pytest.raises(AtollError) as caught:
        c.get("/users/me")
    assert caught.value.status is None
    assert f"cannot reach Atoll at {url}: is `atoll up` running?" in caught.value.message()


def test_a_missing_or_bad_token_points_to_login(isolated: Path, server: RunningServer) -> None:
    with Client(server.url) as c, pytest.raises(AtollError) as caught:
        c.get("/projects")
    assert caught.value.status == 401
    assert caught.value.message() == f"not logged in to {server.url} (run `atoll login`)"
    with Client(server.url, "atl_nope") as c, pytest.raises(AtollError) as caught:
        c.get("/projects")
    assert "unknown, expired or revoked" in caught.value.message()
