"""People at terminals: an admin logged in with `atoll login`, and users the admin creates."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator

import pytest

from tests.e2e.cli import PYCACHE, Cli
from tests.support.server import ADMIN_PASSWORD, RunningServer, start_server
from tests.support.tenants import stop_workloads

UserFactory = Callable[..., Cli]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The real `atoll up` on SQLite, one per test module (with a bytecode cache, as `Cli`)."""
    bytecode = {"PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": str(PYCACHE)}
    srv = start_server(tmp_path_factory.mktemp("atoll-server"), extra_env=bytecode)
    try:
        yield srv
    finally:
        srv.stop()
        stop_workloads(srv.data_dir / "runtime")  # nodes' instances outlive `atoll up` by design


@pytest.fixture(scope="module")
def admin(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """The first admin, logged in through `atoll login` with a password."""
    cli = Cli(tmp_path_factory.mktemp("admin-config"))
    cli.ok("login", "--url", server.url, "--username", "admin", "--password", ADMIN_PASSWORD)
    return cli


@pytest.fixture(scope="module")
def make_user(server: RunningServer, admin: Cli, tmp_path_factory: pytest.TempPathFactory) -> UserFactory:
    """A user with their own config dir, logged in.

    `via_cli=True` goes the way a person would (`atoll user create`, then `atoll login`);
    otherwise the account and its token come from the REST API and the config file is
    written as `atoll login` writes it, which keeps the suite quick (each CLI start costs
    about a second of imports).
    """

    def make(username: str, *, org: str | None = "default", via_cli: bool = False) -> Cli:
        password = f"{username}-password-1"
        cli = Cli(tmp_path_factory.mktemp(f"{username}-config"))
        if via_cli:
            args = ["user", "create", username, "--password", password]
            admin.ok(*([*args, "--org", org] if org else args))
            cli.ok("login", "--url", server.url, "--username", username, "--password", password)
            return cli
        with server.api() as api:
            body = {"username": username, "password": password, "organizationId": org}
            api.post("/users", json=body).raise_for_status()
            r = api.post("/auth/tokens", json={"username": username, "password": password, "name": "e2e"})
            r.raise_for_status()
        config = {
            "url": server.url,
            "token": r.json()["token"],
            "tokenId": r.json()["id"],
            "username": username,
        }
        path = cli.config_dir / "config.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(config, f)
        return cli

    return make
