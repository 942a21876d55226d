"""A new team's first hour with the real `atoll` CLI against the real server.

The admin logs in, creates users, a community and a project; roles given directly, through
a group and through an invite link decide who sees the project; bad input is refused with
one line naming the field and changes nothing.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.cli import Cli
from tests.e2e.conftest import UserFactory
from tests.support.server import RunningServer

pytestmark = pytest.mark.e2e


@dataclass
class World:
    project_id: str
    bob: Cli
    carol: Cli


@pytest.fixture(scope="module")
def world(admin: Cli, make_user: UserFactory) -> World:
    admin.ok("community", "create", "team", "--description", "The ML team")
    admin.ok("project", "create", "demo", "-c", "team")
    project = admin.json("project", "get", "team/demo")
    bob = make_user("bob", via_cli=True)  # `atoll user create bob --org default`, `atoll login`
    return World(project_id=project["id"], bob=bob, carol=make_user("carol"))


def ids(items: list[dict[str, Any]]) -> set[str]:
    return {i["id"] for i in items}


def test_admin_login_saves_a_private_config(admin: Cli, server: RunningServer) -> None:
    config = admin.config()
    assert config["url"] == server.url
    assert config["token"].startswith("atl_")
    mode = stat.S_IMODE((admin.config_dir / "config.json").stat().st_mode)
    assert mode == 0o600
    me = admin.json("whoami")
    assert me["username"] == "admin" and me["isAdmin"] is True


def test_a_role_on_the_project_lets_bob_see_it(world: World, admin: Cli) -> None:
    assert world.project_id not in ids(world.bob.json("project", "list"))
    world.bob.fail("project", "get", world.project_id)

    admin.ok("member", "add", "-p", "team/demo", "--user", "bob", "--role", "developer")

    assert world.project_id in ids(world.bob.json("project", "list"))
    assert world.bob.json("project", "get", "demo")["id"] == world.project_id
    bindings = admin.json("member", "list", "-p", world.project_id)
    bob = [b for b in bindings if b["subjectName"] == "bob"]
    assert [(b["role"], b["roleId"]) for b in bob] == [
        ("developer", "datasphere.community-projects.developer")
    ]
    # A developer may not look at the project's cost limits (spec §2: Editor).
    line = world.bob.fail("project", "limits", "show", world.project_id)
    assert "Editor" in line


def test_a_user_without_a_role_sees_nothing_of_the_project(world: World) -> None:
    line = world.carol.fail("project", "get", world.project_id)
    assert "not found" in line
    assert world.carol.json("project", "list") == []
    listing = world.carol.ok("project", "list")
    assert world.project_id not in listing.out and "demo" not in listing.out


def test_a_role_given_to_a_group_reaches_its_members(
    world: World, admin: Cli, make_user: UserFactory, server: RunningServer
) -> None:
    dave = make_user("dave")

    admin.ok("group", "create", "ml-team", "--description", "people who train models")
    admin.ok("group", "add-user", "ml-team", "dave")
    assert [u["username"] for u in admin.json("group", "members", "ml-team")] == ["dave"]
    binding = admin.json("member", "add", "-p", world.project_id, "--group", "ml-team", "--role", "viewer")
    assert binding["subjectType"] == "group" and binding["role"] == "viewer"

    assert ids(dave.json("project", "list")) == {world.project_id}

    admin.ok("group", "remove-user", "ml-team", "dave")
    assert dave.json("project", "list") == []
    admin.ok("member", "remove", "-p", world.project_id, "--group", "ml-team")
    with server.api() as api:
        bindings = api.get(f"/projects/{world.project_id}/access-bindings").json()
    assert "ml-team" not in {b["subjectName"] for b in bindings}


def test_an_invite_link_lets_people_in_as_often_as_it_allows(
    world: World, admin: Cli, make_user: UserFactory, server: RunningServer, tmp_path: Path
) -> None:
    erin = make_user("erin", org=None)  # not even in the organization yet
    created = admin.ok("invite", "create", "-p", "team/demo", "--role", "viewer", "--max-uses", "2")
    link = created.out.strip().splitlines()[-1]
    assert link.startswith(server.url + "/invite/")

    accepted = erin.ok("invite", "accept", link)
    assert "viewer" in accepted.out
    assert ids(erin.json("project", "list")) == {world.project_id}

    # Someone without an account: the link makes one, and logs the CLI in.
    gina = Cli(tmp_path / "gina")
    gina.ok("invite", "accept", link, "--username", "gina", "--password", "gina-password-1")
    assert gina.config()["url"] == server.url
    assert ids(gina.json("project", "list")) == {world.project_id}

    invites = admin.json("invite", "list", "-p", world.project_id)
    assert [(i["state"], i["uses"]) for i in invites] == [("USED", 2)]

    frank = make_user("frank")
    line = frank.fail("invite", "accept", link)
    assert "used up" in line

    # A revoked invite stops working (here given as the bare token rather than the link).
    revoked = admin.json("invite", "create", "-c", "team", "--role", "developer")
    admin.ok("invite", "revoke", "-c", "team", revoked["id"])
    frank.fail("invite", "accept", revoked["token"])
    assert frank.json("community", "list") == []


def test_bad_input_names_the_field_and_changes_nothing(
    world: World, admin: Cli, server: RunningServer
) -> None:
    pid = world.project_id

    def state() -> list[Any]:
        # Read straight from the API: the CLI's own output is what is under test here.
        with server.api() as api:
            paths = [
                "/projects",
                f"/projects/{pid}/access-bindings",
                f"/projects/{pid}",
                f"/projects/{pid}/limits",
                "/communities",
                f"/projects/{pid}/invites",
            ]
            return [api.get(p).json() for p in paths]

    before = state()

    line = admin.fail("project", "create", "Bad_Name", "-c", "team")
    assert line.startswith("error: name: ") and "Bad_Name" in line
    line = admin.fail("member", "add", "-p", pid, "--user", "carol", "--role", "owner")
    assert line.startswith("error: role: ") and "viewer" in line
    line = admin.fail("project", "settings", "set", pid, "--inactivity-timeout", "3x")
    assert line.startswith("error: settings.vmInactivityTimeout: ")
    line = admin.fail("project", "limits", "set", pid, "--max-units-per-hour", "-5")
    assert "maxUnitsPerHour" in line and "positive" in line
    line = admin.fail("community", "create", "Team!")
    assert line.startswith("error: name: ")
    line = admin.fail("project", "settings", "set", pid, "--stale-exec-timeout-mode", "SOMETIMES")
    assert "staleExecTimeoutMode" in line and "NO_TIMEOUT" in line
    line = admin.fail("community", "restrictions", "set", "team", "--allow", "zz9.9")
    assert line.startswith("error: allowedConfigurations[0]: ")

    # Mistakes on the command line itself: exit status 2, still one line.
    line = admin.fail("member", "add", "--user", "bob", "--role", "viewer", code=2)
    assert "--project" in line
    admin.fail("member", "list", "-p", pid, "--org", "default", code=2)
    line = admin.fail("project", "limits", "set", pid, "--balance", "lots", code=2)
    assert "--balance" in line
    admin.fail("project", "lst", code=2)
    admin.fail("project", "list", "--format", "xml", code=2)

    line = admin.fail("invite", "create", "-p", pid, "--role", "viewer", "--expires-in-days", "365")
    assert line.startswith("error: expiresInDays: ")

    assert state() == before


def test_settings_and_limits_round_trip(world: World, admin: Cli) -> None:
    pid = world.project_id
    settings = admin.json(
        "project",
        "settings",
        "set",
        pid,
        "--inactivity-timeout",
        "1h30m",
        "--stale-exec-timeout-mode",
        "ONE_HOUR",
        "--default-configuration",
        "s1.1",
    )
    assert settings["vmInactivityTimeout"] == "5400s"
    assert settings["staleExecTimeoutMode"] == "ONE_HOUR"
    assert settings["defaultConfiguration"] == "s1.1"
    assert admin.json("project", "settings", "show", "team/demo") == settings

    limits = admin.json("project", "limits", "set", pid, "--balance", "1000", "--max-units-per-hour", "50000")
    assert limits == {"balance": 1000, "maxUnitsPerHour": 50000, "maxUnitsPerExecution": None}
    limits = admin.json("project", "limits", "set", pid, "--balance", "none")
    assert limits["balance"] is None and limits["maxUnitsPerHour"] == 50000


def test_json_output_is_the_api_json(world: World, admin: Cli, server: RunningServer) -> None:
    with server.api() as api:
        assert (
            admin.json("project", "get", world.project_id) == api.get(f"/projects/{world.project_id}").json()
        )
        assert admin.json("config", "list") == api.get("/configurations").json()
        community = admin.json("community", "get", "team")
        assert community == api.get(f"/communities/{community['id']}").json()


def test_restrictions_and_the_catalogue(world: World, admin: Cli) -> None:
    r = admin.json(
        "community",
        "restrictions",
        "set",
        "team",
        "--allow",
        "s1.1",
        "--allow",
        "s1.2",
        "--feature",
        "nodesAndAliases=false",
    )
    assert r["allowedConfigurations"] == ["s1.1", "s1.2"]
    assert r["features"]["nodesAndAliases"] is False
    catalogue = {c["name"]: c for c in admin.json("config", "list", "-c", "team")}
    assert catalogue["s1.1"]["allowed"] is True and catalogue["c1.8"]["allowed"] is False
    assert all(isinstance(c["available"], bool) for c in catalogue.values())
    table = admin.ok("config", "list", "-p", world.project_id).out
    assert "AVAILABLE" in table and "ALLOWED" in table and "g2.1" in table
    assert (
        admin.json("community", "restrictions", "set", "team", "--allow-all")["allowedConfigurations"] is None
    )


def test_environments_are_listed_with_their_build(world: World, admin: Cli, server: RunningServer) -> None:
    envs = admin.json("env", "list")
    with server.api() as api:
        assert envs == api.get("/environments").json()
        missing = api.get("/environments/nope")
        assert missing.status_code == 404 and missing.json()["errors"][0]["field"] == "name"
    ds = next(e for e in envs if e["name"] == "datascience")
    assert ds["default"] and ds["builtIn"] and ds["packagesLocked"] > 100
    assert ds["status"] in ("PENDING", "BUILDING", "READY")
    assert admin.json("env", "get", "datascience")["key"] == ds["key"]
    table = admin.ok("env", "list").out
    assert "datascience" in table and "PACKAGES" in table
    line = admin.fail("env", "get", "nope")
    assert "no environment 'nope'" in line and "datascience" in line
    # Any signed-in user may look; nobody who is not signed in.
    assert httpx.get(f"{server.url}/api/v1/environments").status_code == 401


def test_names_resolve_and_ambiguity_is_explained(world: World, admin: Cli) -> None:
    team = admin.json("community", "get", "team")
    assert admin.json("community", "get", "default/team")["id"] == team["id"]
    assert admin.json("org", "get", "default")["id"] == team["organizationId"]

    admin.ok("org", "create", "acme")
    admin.ok("community", "create", "team", "--org", "acme")
    line = admin.fail("community", "get", "team")
    assert "several communities" in line and "acme" in line and "default" in line
    other = admin.json("community", "get", "acme/team")
    assert other["id"] != team["id"]
    admin.ok("community", "delete", "acme/team", "--yes")
    admin.ok("org", "delete", "acme", "--yes")
    assert admin.json("community", "get", "team")["id"] == team["id"]


def test_billing_account_linking(world: World, admin: Cli) -> None:
    ba = admin.json("billing-account", "create", "ml-budget", "--currency", "EUR")
    assert ba["currency"] == "EUR"
    linked = admin.json("community", "link-billing", "team", "ml-budget")
    assert linked["billingAccountId"] == ba["id"]
    assert admin.json("community", "link-billing", "team", "--unlink")["billingAccountId"] is None
    admin.ok("billing-account", "delete", "ml-budget", "--yes")
    assert ba["id"] not in ids(admin.json("billing-account", "list"))


def test_the_external_ide_link_is_off_until_the_community_turns_it_on(
    world: World, admin: Cli, server: RunningServer
) -> None:
    line = admin.fail("notebook", "ide-link", "-p", "team/demo")
    assert "external IDE link is off in community 'team'" in line and "externalIde=true" in line, line
    admin.ok("community", "restrictions", "set", "team", "--feature", "externalIde=true")
    try:
        r = admin.ok("notebook", "ide-link", "-p", "team/demo", "--expires-in-days", "2")
        url = r.out.strip()
        assert url.startswith(f"{server.url}/nb/{world.project_id}/?token=atl_"), r
        assert "Existing Jupyter Server" in r.err and "atoll token revoke" in r.err
        token_id = r.err.split("revoke: atoll token revoke ")[1].split()[0]
        listed = {t["id"]: t for t in admin.json("token", "list")}
        assert listed[token_id]["projectId"] == world.project_id
        admin.ok("token", "revoke", token_id)
    finally:
        admin.ok("community", "restrictions", "set", "team", "--feature", "externalIde=false")
