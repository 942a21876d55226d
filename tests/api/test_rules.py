"""The spec's rules through the REST API: validation naming the field, nothing changed on bad
input, settings and limits, restrictions, billing links, groups, invites, tokens, CSRF."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.api.conftest import as_token
from tests.support.server import ADMIN_PASSWORD

V = "/api/v1"


def problem_field(r: Any) -> str:
    assert r.headers["content-type"].startswith("application/problem+json"), r.text
    body = r.json()
    assert body["status"] == r.status_code and body["title"] and body["detail"]
    return str(body["errors"][0]["field"]) if body.get("errors") else ""


@pytest.fixture(scope="module")
def org_id(admin: TestClient) -> str:
    return str(admin.get(f"{V}/organizations").json()["items"][0]["id"])


@pytest.fixture(scope="module")
def community(admin: TestClient, org_id: str) -> dict[str, Any]:
    r = admin.post(
        f"{V}/communities", json={"organizationId": org_id, "name": "rules", "labels": {"team": "ml"}}
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


@pytest.fixture(scope="module")
def project(admin: TestClient, community: dict[str, Any]) -> dict[str, Any]:
    r = admin.post(f"{V}/projects", json={"communityId": community["id"], "name": "rules-prj"})
    assert r.status_code == 201, r.text
    return dict(r.json())


def make_user(admin: TestClient, app: FastAPI, name: str, org: str = "default") -> TestClient:
    r = admin.post(f"{V}/users", json={"username": name, "password": "user-pass-123", "organizationId": org})
    assert r.status_code == 201, r.text
    tok = TestClient(app).post(f"{V}/auth/tokens", json={"username": name, "password": "user-pass-123"})
    return as_token(app, tok.json()["token"])


BAD_PROJECT_BODIES = [
    ({"name": "Bad_Name"}, "name"),
    ({"name": "-x"}, "name"),
    ({"name": "a" * 64}, "name"),
    ({"name": "ok-name", "description": "x" * 257}, "description"),
    ({"name": "ok-name", "labels": {"Bad": "v"}}, "labels.Bad"),
    ({"name": "ok-name", "labels": {f"k{i}": "v" for i in range(65)}}, "labels"),
    ({"name": "ok-name", "settings": {"vmInactivityTimeout": "soon"}}, "settings.vmInactivityTimeout"),
    ({"name": "ok-name", "settings": {"vmInactivityTimeout": 0}}, "settings.vmInactivityTimeout"),
    ({"name": "ok-name", "settings": {"staleExecTimeoutMode": "TWO_HOURS"}}, "settings.staleExecTimeoutMode"),
    ({"name": "ok-name", "settings": {"defaultConfiguration": "z9.99"}}, "settings.defaultConfiguration"),
    ({"name": "ok-name", "settings": {"nope": 1}}, "settings.nope"),
    ({"name": "ok-name", "limits": {"maxUnitsPerHour": -5}}, "limits.maxUnitsPerHour"),
    ({"name": "ok-name", "limits": {"balance": "lots"}}, "limits.balance"),
    ({"name": "ok-name", "extra": True}, "extra"),
    ({}, "name"),
]


@pytest.mark.parametrize(("body", "field"), BAD_PROJECT_BODIES, ids=[f for _, f in BAD_PROJECT_BODIES])
def test_bad_project_input_names_the_field_and_changes_nothing(
    admin: TestClient, community: dict[str, Any], body: dict[str, Any], field: str
) -> None:
    before = admin.get(f"{V}/projects", params={"communityId": community["id"]}).json()["items"]
    r = admin.post(f"{V}/projects", json={"communityId": community["id"], **body})
    assert r.status_code == 422, r.text
    assert problem_field(r) == field
    after = admin.get(f"{V}/projects", params={"communityId": community["id"]}).json()["items"]
    assert before == after


def test_bad_update_changes_nothing(admin: TestClient, project: dict[str, Any]) -> None:
    # A valid field beside an invalid one: the whole update is refused.
    r = admin.patch(
        f"{V}/projects/{project['id']}",
        json={"description": "changed", "settings": {"staleExecTimeoutMode": "SOMETIMES"}},
    )
    assert r.status_code == 422 and problem_field(r) == "settings.staleExecTimeoutMode"
    assert admin.get(f"{V}/projects/{project['id']}").json()["description"] == project["description"]


def test_duplicate_names_conflict(
    admin: TestClient, community: dict[str, Any], project: dict[str, Any]
) -> None:
    r = admin.post(f"{V}/projects", json={"communityId": community["id"], "name": project["name"]})
    assert r.status_code == 409 and problem_field(r) == "name"


def test_project_settings_defaults_and_updates(admin: TestClient, project: dict[str, Any]) -> None:
    assert project["settings"]["vmInactivityTimeout"] == "10800s"  # 3 h default (spec §3.3)
    assert project["settings"]["staleExecTimeoutMode"] == "NO_TIMEOUT"
    r = admin.patch(
        f"{V}/projects/{project['id']}",
        json={
            "settings": {
                "vmInactivityTimeout": "1h30m",
                "staleExecTimeoutMode": "ONE_HOUR",
                "defaultConfiguration": "s1.1",
            }
        },
    )
    assert r.status_code == 200, r.text
    s = r.json()["settings"]
    assert s == {
        "defaultConfiguration": "s1.1",
        "defaultEnvironment": None,  # the installation's default built-in environment
        "activeImageId": None,  # no Docker image activated: notebooks run in the environment
        "vmInactivityTimeout": "5400s",
        "staleExecTimeoutMode": "ONE_HOUR",
        "ide": "JUPYTER_LAB",
    }


def test_limits_set_clear_and_validate(admin: TestClient, project: dict[str, Any]) -> None:
    url = f"{V}/projects/{project['id']}/limits"
    assert admin.get(url).json() == {"balance": None, "maxUnitsPerHour": None, "maxUnitsPerExecution": None}
    r = admin.patch(url, json={"balance": 5000, "maxUnitsPerHour": 14400, "maxUnitsPerExecution": 600})
    assert r.json() == {"balance": 5000, "maxUnitsPerHour": 14400, "maxUnitsPerExecution": 600}
    r = admin.patch(url, json={"maxUnitsPerExecution": 0})
    assert r.status_code == 422 and problem_field(r) == "maxUnitsPerExecution"
    r = admin.patch(url, json={"maxUnitsPerHour": None})
    assert r.json()["maxUnitsPerHour"] is None and r.json()["balance"] == 5000


def test_community_zone_is_fixed(admin: TestClient, community: dict[str, Any]) -> None:
    assert community["zoneId"] == "local"
    r = admin.patch(f"{V}/communities/{community['id']}", json={"zoneId": "elsewhere"})
    assert r.status_code == 422 and problem_field(r) == "zoneId"
    r = admin.post(
        f"{V}/communities",
        json={"organizationId": community["organizationId"], "name": "z", "zoneId": "mars"},
    )
    assert r.status_code == 422 and problem_field(r) == "zoneId"


def test_restrictions_limit_default_configuration(admin: TestClient, community: dict[str, Any]) -> None:
    url = f"{V}/communities/{community['id']}/restrictions"
    r = admin.get(url).json()
    assert r["allowedConfigurations"] is None
    # Every feature is on by default but the external IDE link, an Admin's choice (spec §4.1).
    assert {k for k, on in r["features"].items() if not on} == {"externalIde"}
    r = admin.patch(url, json={"allowedConfigurations": ["s1.1", "nope.1"]})
    assert r.status_code == 422 and problem_field(r) == "allowedConfigurations[1]"
    assert admin.get(url).json()["allowedConfigurations"] is None
    r = admin.patch(
        url, json={"allowedConfigurations": ["s1.1", "s1.2"], "features": {"nodesAndAliases": False}}
    )
    assert r.status_code == 200 and r.json()["allowedConfigurations"] == ["s1.1", "s1.2"]
    assert r.json()["features"]["nodesAndAliases"] is False
    r = admin.post(
        f"{V}/projects",
        json={
            "communityId": community["id"],
            "name": "restricted",
            "settings": {"defaultConfiguration": "c1.8"},
        },
    )
    assert r.status_code == 422 and "not allowed" in r.json()["detail"]
    cfgs = admin.get(f"{V}/configurations", params={"communityId": community["id"]}).json()
    allowed = {c["name"] for c in cfgs if c["allowed"]}
    assert allowed == {"s1.1", "s1.2"}
    r = admin.patch(url, json={"features": {"teleport": True}})
    assert r.status_code == 422 and problem_field(r) == "features.teleport"
    r = admin.patch(url, json={"allowAllConfigurations": True})
    assert r.json()["allowedConfigurations"] is None


def test_configuration_catalogue_and_availability(admin: TestClient) -> None:
    cfgs = {c["name"]: c for c in admin.get(f"{V}/configurations").json()}
    for name in (
        "c1.4",
        "c1.8",
        "c1.32",
        "c1.80",
        "g1.1",
        "g1.2",
        "g1.4",
        "g2.1",
        "g2.2",
        "g2.4",
        "g2.8",
        "gt4.1",
    ):
        assert name in cfgs
    assert cfgs["c1.4"]["unitsPerSecond"] == 4 and cfgs["g1.1"]["unitsPerSecond"] == 72
    assert cfgs["g2.8"]["unitsPerSecond"] == 928 and cfgs["gt4.1"]["gpuType"] == "T4"
    assert cfgs["s1.1"]["available"] is True
    # The CI machines have no GPU: GPU configurations are unavailable and say why.
    capacity = admin.get(f"{V}/system/capacity").json()
    if not capacity["gpus"]:
        assert cfgs["g1.1"]["available"] is False and "GPU" in cfgs["g1.1"]["availabilityReason"]
    assert cfgs["c1.80"]["available"] is False and "vCPU" in cfgs["c1.80"]["availabilityReason"]


def test_admin_edits_catalogue(admin: TestClient, app: FastAPI) -> None:
    r = admin.put(
        f"{V}/configurations/x1.2", json={"vcpu": 2, "ramGb": 2, "unitsPerSecond": 2, "description": "lab"}
    )
    assert r.status_code == 200 and r.json()["available"] is True
    r = admin.put(f"{V}/configurations/x1.2", json={"gpuCount": 1})
    assert r.status_code == 422 and problem_field(r) == "gpuType"
    assert admin.get(f"{V}/configurations/x1.2").json()["gpuCount"] == 0
    r = admin.put(f"{V}/configurations/x1.3", json={"vcpu": 2})
    assert r.status_code == 422 and problem_field(r) == "ramGb"
    r = admin.put(f"{V}/configurations/Bad Name", json={"vcpu": 1, "ramGb": 1, "unitsPerSecond": 1})
    assert r.status_code == 422 and problem_field(r) == "name"
    r = admin.put(f"{V}/configurations/x1.2", json={"unitsPerSecond": -1})
    assert r.status_code == 422 and problem_field(r) == "unitsPerSecond"
    assert admin.delete(f"{V}/configurations/x1.2").status_code == 204
    assert admin.get(f"{V}/configurations/x1.2").status_code == 404


def test_billing_link_needs_billing_editor(admin: TestClient, app: FastAPI, org_id: str) -> None:
    dora = make_user(admin, app, "dora")
    com = dora.post(f"{V}/communities", json={"organizationId": org_id, "name": "dora-com"}).json()
    ba = admin.post(f"{V}/billing-accounts", json={"organizationId": org_id, "name": "team-ba"}).json()
    url = f"{V}/communities/{com['id']}/billing-account"
    # dora edits her community but has no role on the billing account: it is not even visible.
    r = dora.put(url, json={"billingAccountId": ba["id"]})
    assert r.status_code == 422 and problem_field(r) == "billingAccountId"
    admin.post(f"{V}/billing-accounts/{ba['id']}/access-bindings", json={"subject": "dora", "role": "viewer"})
    r = dora.put(url, json={"billingAccountId": ba["id"]})
    assert r.status_code == 422 and "editor" in r.json()["detail"]
    admin.post(f"{V}/billing-accounts/{ba['id']}/access-bindings", json={"subject": "dora", "role": "editor"})
    r = dora.put(url, json={"billingAccountId": ba["id"]})
    assert r.status_code == 200 and r.json()["billingAccountId"] == ba["id"]
    # a suspended account cannot be linked; a linked one cannot be deleted.
    assert admin.delete(f"{V}/billing-accounts/{ba['id']}").status_code == 409
    ba2 = admin.post(f"{V}/billing-accounts", json={"organizationId": org_id, "name": "frozen"}).json()
    admin.patch(f"{V}/billing-accounts/{ba2['id']}", json={"active": False})
    r = admin.put(url, json={"billingAccountId": ba2["id"]})
    assert r.status_code == 422 and "suspended" in r.json()["detail"]
    usage = admin.get(f"{V}/billing-accounts/{ba['id']}/usage").json()
    assert usage == {"units": 0, "cost": 0.0, "currency": "USD", "since": None, "until": None}


def test_group_roles_follow_the_hierarchy(admin: TestClient, app: FastAPI, org_id: str) -> None:
    erin = make_user(admin, app, "erin")
    com = admin.post(f"{V}/communities", json={"organizationId": org_id, "name": "grp-com"}).json()
    prj = admin.post(f"{V}/projects", json={"communityId": com["id"], "name": "grp-prj"}).json()
    assert erin.get(f"{V}/projects/{prj['id']}").status_code == 404
    g = admin.post(f"{V}/groups", json={"organizationId": org_id, "name": "editors"}).json()
    assert admin.post(f"{V}/groups/{g['id']}/members", json={"user": "erin"}).status_code == 201
    r = admin.post(
        f"{V}/communities/{com['id']}/access-bindings",
        json={"subjectType": "group", "subject": "editors", "role": "editor"},
    )
    assert r.status_code == 201 and r.json()["roleId"] == "datasphere.communities.editor"
    # community Editor through the group → project Editor in every project of the community
    assert erin.get(f"{V}/projects/{prj['id']}").status_code == 200
    assert erin.get(f"{V}/projects/{prj['id']}/limits").status_code == 200
    assert erin.patch(f"{V}/projects/{prj['id']}/limits", json={"balance": 1}).status_code == 403
    assert erin.delete(f"{V}/groups/{g['id']}/members/erin").status_code == 403
    assert admin.delete(f"{V}/groups/{g['id']}/members/erin").status_code == 204
    assert erin.get(f"{V}/projects/{prj['id']}").status_code == 404


def test_role_grant_rules(admin: TestClient, app: FastAPI, project: dict[str, Any]) -> None:
    url = f"{V}/projects/{project['id']}/access-bindings"
    r = admin.post(url, json={"subject": "nobody-here", "role": "viewer"})
    assert r.status_code == 422 and problem_field(r) == "subject"
    r = admin.post(url, json={"subject": "admin", "role": "owner"})
    assert r.status_code == 422 and problem_field(r) == "role"
    r = admin.post(url, json={"subjectType": "robot", "subject": "admin", "role": "viewer"})
    assert r.status_code == 422 and problem_field(r) == "subjectType"
    # a user outside the organization must join it first
    admin.post(f"{V}/organizations", json={"name": "other-org"})
    admin.post(f"{V}/users", json={"username": "frank", "password": "user-pass-123"})
    r = admin.post(url, json={"subject": "frank", "role": "viewer"})
    assert r.status_code == 422 and "not a member" in r.json()["detail"]
    # a grant replaces the previous role of the same subject
    make_user(admin, app, "gina")
    admin.post(url, json={"subject": "gina", "role": "viewer"})
    admin.post(url, json={"subject": "gina", "role": "editor"})
    roles = [b["role"] for b in admin.get(url).json() if b["subjectName"] == "gina"]
    assert roles == ["editor"]


def test_last_org_admin_cannot_be_removed(admin: TestClient, org_id: str) -> None:
    bindings = admin.get(f"{V}/organizations/{org_id}/access-bindings").json()
    mine = next(b for b in bindings if b["subjectName"] == "admin")
    r = admin.delete(f"{V}/organizations/{org_id}/access-bindings/{mine['id']}")
    assert r.status_code == 409


def test_invite_link_flow(admin: TestClient, app: FastAPI, project: dict[str, Any]) -> None:
    r = admin.post(f"{V}/projects/{project['id']}/invites", json={"role": "developer", "maxUses": 1})
    assert r.status_code == 201
    inv = r.json()
    assert inv["url"].endswith(f"/invite/{inv['token']}") and inv["state"] == "ACTIVE"
    anon = TestClient(app)
    info = anon.get(f"{V}/invites/{inv['token']}").json()
    assert info["resourceName"] == project["name"] and info["role"] == "developer"
    # not signed in and no account details: refused, nothing created
    assert anon.post(f"{V}/invites/{inv['token']}/accept", json={}).status_code == 401
    r = anon.post(
        f"{V}/invites/{inv['token']}/accept", json={"username": "hank", "password": "hank-pass-123"}
    )
    assert r.status_code == 200, r.text
    assert "atoll_session" in r.headers.get("set-cookie", "")  # signed in as the new account
    hank_tok = (
        TestClient(app)
        .post(f"{V}/auth/tokens", json={"username": "hank", "password": "hank-pass-123"})
        .json()["token"]
    )
    hank = as_token(app, hank_tok)
    assert hank.get(f"{V}/projects/{project['id']}").status_code == 200
    assert hank.get(f"{V}/projects/{project['id']}/access-bindings").status_code == 200
    # used up
    r = TestClient(app).post(
        f"{V}/invites/{inv['token']}/accept", json={"username": "ivan", "password": "ivan-pass-123"}
    )
    assert r.status_code == 404
    assert admin.get(f"{V}/users").json()["items"] and not any(
        u["username"] == "ivan" for u in admin.get(f"{V}/users").json()["items"]
    )
    r = admin.post(f"{V}/projects/{project['id']}/invites", json={"role": "viewer", "expiresInDays": 0})
    assert r.status_code == 422 and problem_field(r) == "expiresInDays"


def test_tokens_shown_once_expire_and_revoke(admin: TestClient, app: FastAPI) -> None:
    r = admin.post(f"{V}/tokens", json={"name": "ci", "expiresInDays": 1})
    tok = r.json()
    assert tok["token"].startswith("atl_") and tok["state"] == "ACTIVE"
    listed = admin.get(f"{V}/tokens").json()["items"]
    assert all("token" not in t for t in listed)
    me = as_token(app, tok["token"])
    assert me.get(f"{V}/users/me").json()["username"] == "admin"
    assert admin.delete(f"{V}/tokens/{tok['id']}").json()["state"] == "REVOKED"
    r = me.get(f"{V}/users/me")
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    r = admin.post(f"{V}/tokens", json={"name": "x", "expiresInDays": 0})
    assert r.status_code == 422 and problem_field(r) == "expiresInDays"
    # Only hashes are stored.
    from atoll.store.tables import ApiToken

    with app.state.db.session() as s:
        assert all(not t.token_hash.startswith("atl_") for t in s.query(ApiToken).all())


def test_cookie_session_needs_csrf(app: FastAPI, org_id: str) -> None:
    c = TestClient(app)
    r = c.post(f"{V}/auth/sessions", json={"username": "admin", "password": "wrong-password"})
    assert r.status_code == 401
    r = c.post(f"{V}/auth/sessions", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert r.status_code == 200
    set_cookie = r.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=lax" in set_cookie
    csrf = r.json()["csrfToken"]
    assert c.get(f"{V}/users/me").status_code == 200
    body = {"organizationId": org_id, "name": "csrf-com"}
    assert c.post(f"{V}/communities", json=body).status_code == 403
    assert c.post(f"{V}/communities", json=body, headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert c.post(f"{V}/communities", json=body, headers={"X-CSRF-Token": csrf}).status_code == 201
    assert c.delete(f"{V}/auth/sessions/current", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert c.get(f"{V}/users/me").status_code == 401


def test_pagination_walks_every_item_once(admin: TestClient, org_id: str) -> None:
    com = admin.post(f"{V}/communities", json={"organizationId": org_id, "name": "paged"}).json()
    names = {f"p{i:02d}" for i in range(7)}
    for n in names:
        assert admin.post(f"{V}/projects", json={"communityId": com["id"], "name": n}).status_code == 201
    seen: list[str] = []
    token = None
    while True:
        params: dict[str, Any] = {"communityId": com["id"], "pageSize": 3}
        if token:
            params["pageToken"] = token
        body = admin.get(f"{V}/projects", params=params).json()
        seen += [p["name"] for p in body["items"]]
        token = body["nextPageToken"]
        if not token:
            break
    assert sorted(seen) == sorted(names)
    r = admin.get(f"{V}/projects", params={"pageToken": "garbage!"})
    assert r.status_code == 422 and problem_field(r) == "pageToken"
    r = admin.get(f"{V}/projects", params={"pageSize": 0})
    assert r.status_code == 422 and problem_field(r) == "pageSize"


def test_delete_rules(admin: TestClient, org_id: str) -> None:
    com = admin.post(f"{V}/communities", json={"organizationId": org_id, "name": "doomed"}).json()
    prj = admin.post(f"{V}/projects", json={"communityId": com["id"], "name": "doomed-prj"}).json()
    r = admin.delete(f"{V}/communities/{com['id']}")
    assert r.status_code == 409 and "projects" in r.json()["detail"]
    assert admin.delete(f"{V}/projects/{prj['id']}").status_code == 204
    assert admin.get(f"{V}/projects/{prj['id']}").status_code == 404
    assert admin.delete(f"{V}/communities/{com['id']}").status_code == 204


def test_unknown_endpoint_is_problem_json(admin: TestClient) -> None:
    r = admin.get(f"{V}/nope")
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")


def test_password_change_ends_other_sessions(admin: TestClient, app: FastAPI) -> None:
    make_user(admin, app, "pat")
    first, second = TestClient(app), TestClient(app)
    creds = {"username": "pat", "password": "user-pass-123"}
    csrf = first.post(f"{V}/auth/sessions", json=creds).json()["csrfToken"]
    second.post(f"{V}/auth/sessions", json=creds)
    r = first.put(
        f"{V}/users/me/password",
        json={"currentPassword": "wrong-one", "newPassword": "new-pass-456"},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 422 and problem_field(r) == "currentPassword"
    assert second.get(f"{V}/users/me").status_code == 200
    r = first.put(
        f"{V}/users/me/password",
        json={"currentPassword": "user-pass-123", "newPassword": "new-pass-456"},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 204
    assert first.get(f"{V}/users/me").status_code == 200
    assert second.get(f"{V}/users/me").status_code == 401
    assert TestClient(app).post(f"{V}/auth/tokens", json=creds).status_code == 401


def test_unknown_page_is_html_for_browsers(client: TestClient) -> None:
    r = client.get("/no-such-page", headers={"accept": "text/html"})
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    r = client.get("/no-such-page")
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    r = client.get("/api/v1/no-such", headers={"accept": "text/html"})
    assert r.headers["content-type"].startswith("application/problem+json")


def test_credential_routes_ignore_a_stale_session_cookie(app: FastAPI) -> None:
    c = TestClient(app)
    assert (
        c.post(f"{V}/auth/sessions", json={"username": "admin", "password": ADMIN_PASSWORD}).status_code
        == 200
    )
    # The browser holds a session cookie but sends no CSRF header: signing in again or trading
    # credentials for a token does not use the cookie, so it works.
    assert (
        c.post(f"{V}/auth/tokens", json={"username": "admin", "password": ADMIN_PASSWORD}).status_code == 201
    )
    assert (
        c.post(f"{V}/auth/sessions", json={"username": "admin", "password": ADMIN_PASSWORD}).status_code
        == 200
    )


def test_project_shows_its_community_name(
    admin: TestClient, project: dict[str, Any], community: dict[str, Any]
) -> None:
    assert project["communityName"] == community["name"]
    assert admin.get(f"{V}/groups", params={"organizationId": community["organizationId"]}).status_code == 200


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        ("limits", {"maxUnitsPerHour": 2**63}, "maxUnitsPerHour"),
        ("limits", {"balance": -1}, "balance"),
        ("", {"settings": {"vmInactivityTimeout": "9" * 23 + "s"}}, "settings.vmInactivityTimeout"),
    ],
)
def test_huge_and_negative_numbers_are_refused(
    admin: TestClient, project: dict[str, Any], url: str, body: dict[str, Any], field: str
) -> None:
    r = admin.patch(f"{V}/projects/{project['id']}" + (f"/{url}" if url else ""), json=body)
    assert r.status_code == 422 and problem_field(r) == field, r.text


def test_invite_used_once_even_when_accepted_concurrently(
    admin: TestClient, app: FastAPI, project: dict[str, Any]
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    inv = admin.post(f"{V}/projects/{project['id']}/invites", json={"role": "viewer", "maxUses": 1}).json()
    bodies = [{"username": f"racer{i}", "password": "racer-pass-123"} for i in range(6)]

    def accept(body: dict[str, str]) -> int:
        return TestClient(app).post(f"{V}/invites/{inv['token']}/accept", json=body).status_code

    with ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(accept, bodies))
    assert codes.count(200) == 1, codes
    members = [b["subjectName"] for b in admin.get(f"{V}/projects/{project['id']}/access-bindings").json()]
    assert sum(1 for m in members if m.startswith("racer")) == 1


def test_images_without_a_docker_daemon_are_refused_and_nothing_is_made(
    admin: TestClient, project: dict[str, Any]
) -> None:
    body = {"name": "tools", "tag": "1.0", "dockerfile": "FROM debian:bookworm\n"}
    r = admin.post(f"{V}/projects/{project['id']}/images", json=body)
    assert r.status_code == 409 and problem_field(r) == "dockerfile", r.text
    assert "no Docker daemon" in r.json()["detail"]
    assert admin.get(f"{V}/projects/{project['id']}/images").json() == []
    assert admin.get(f"{V}/images/img_nothing").status_code == 404
    r = admin.post(f"{V}/projects/{project['id']}/images:deactivate")
    assert r.status_code == 200 and r.json()["settings"]["activeImageId"] is None
