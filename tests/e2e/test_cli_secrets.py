"""`atoll secret`: values go in through a prompt, env var or stdin and never come back out."""

from __future__ import annotations

from tests.e2e.cli import Cli
from tests.e2e.conftest import UserFactory

VALUE = "hunter2-very-secret"


def test_secret_lifecycle(admin: Cli, make_user: UserFactory) -> None:
    admin.ok("community", "create", "sec-com")
    admin.ok("project", "create", "sec-prj", "-c", "sec-com")
    admin.ok("secret", "create", "API_KEY", "-p", "sec-prj", "--from-env", "MY_KEY", env={"MY_KEY": VALUE})
    r = admin.run("secret", "create", "TOKEN", "-p", "sec-prj", "--stdin", stdin=VALUE + "\n")
    assert r.code == 0, str(r)
    listed = admin.json("secret", "list", "-p", "sec-prj")
    assert sorted(s["name"] for s in listed) == ["API_KEY", "TOKEN"]
    assert all(s["value"] == "***" for s in listed)
    table = admin.ok("secret", "list", "-p", "sec-prj").out
    assert "API_KEY" in table and VALUE not in table
    assert "name" in admin.fail("secret", "create", "bad name", "-p", "sec-prj", "--value", "x")
    assert "--from-env" in admin.fail(
        "secret", "create", "X1", "-p", "sec-prj", "--from-env", "NOPE_NOT_SET", code=2
    )
    # A project Viewer sees names, cannot create or delete.
    viewer = make_user("sally")
    admin.ok("member", "add", "-p", "sec-prj", "--user", "sally", "--role", "viewer")
    assert [s["name"] for s in viewer.json("secret", "list", "-p", "sec-prj")] == ["API_KEY", "TOKEN"]
    assert "Developer" in viewer.fail("secret", "delete", "API_KEY", "-p", "sec-prj", "--yes")
    admin.ok("secret", "update", "API_KEY", "-p", "sec-prj", "--name", "api-key")
    admin.ok("secret", "delete", "api-key", "-p", "sec-prj", "--yes")
    assert [s["name"] for s in admin.json("secret", "list", "-p", "sec-prj")] == ["TOKEN"]
