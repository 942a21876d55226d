"""Single sign-on settings without a provider to talk to: password sign-in turned off, providers
set in ATOLL_SSO_PROVIDERS (checked, re-applied at each start, not editable through the API),
and the checks an admin's provider configuration must pass."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from atoll.app import create_app
from atoll.errors import Invalid
from tests.api.conftest import make_settings
from tests.support.server import ADMIN_PASSWORD

V = "/api/v1"
PROVIDER = {
    "name": "corp",
    "displayName": "Corp SSO",
    "issuer": "https://idp.example.test/realms/corp",
    "clientId": "atoll",
    "clientSecret": "client-secret-never-shown",
    "organization": "corp",
    "adminGroups": ["platform-admins"],
}


def _client(tmp: Path, url: str, **settings: Any) -> TestClient:
    return TestClient(create_app(make_settings(tmp, url, **settings)))


def _token(c: TestClient, username: str, password: str) -> str:
    r = c.post(f"{V}/auth/tokens", json={"username": username, "password": password})
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


def test_password_sign_in_turned_off_leaves_only_installation_admins(
    tmp_path: Path, fresh_database_url: str
) -> None:
    c = _client(tmp_path, fresh_database_url, password_signin=False)
    admin = {"Authorization": f"Bearer {_token(c, 'admin', ADMIN_PASSWORD)}"}
    assert (
        c.post(
            f"{V}/users", json={"username": "bob", "password": "bob-tidal-lantern-42"}, headers=admin
        ).status_code
        == 201
    )
    for path in ("/auth/tokens", "/auth/sessions"):
        r = c.post(f"{V}{path}", json={"username": "bob", "password": "bob-tidal-lantern-42"})
        assert r.status_code == 403 and "password sign-in is turned off" in r.json()["detail"]
    form = c.get("/login").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert csrf is not None
    data = {"username": "bob", "password": "bob-tidal-lantern-42", "csrf_token": csrf.group(1)}
    page = c.post("/login", data=data, follow_redirects=False)
    assert page.status_code == 403 and "password sign-in is turned off" in page.text
    assert "atoll_session" not in c.cookies
    # Refused before the password is looked at: a wrong one gets the same answer (no oracle).
    r = c.post(f"{V}/auth/tokens", json={"username": "bob", "password": "wrong-password-here-1"})
    assert r.status_code == 403
    assert (
        c.post(f"{V}/auth/tokens", json={"username": "admin", "password": "wrong-password-1"}).status_code
        == 401
    )
    # Nor can an invite link make a password account.
    org = c.get(f"{V}/organizations", headers=admin).json()["items"][0]["id"]
    com = c.post(f"{V}/communities", json={"organizationId": org, "name": "inv-com"}, headers=admin).json()
    inv = c.post(f"{V}/communities/{com['id']}/invites", json={"role": "viewer"}, headers=admin)
    assert inv.status_code == 201, inv.text
    link = inv.json()["token"]
    body = {"username": "mallory", "password": "mallory-tidal-lantern-42"}
    r = c.post(f"{V}/invites/{link}/accept", json=body)
    assert r.status_code == 403 and "password sign-in is turned off" in r.json()["detail"]
    assert c.get(f"{V}/users", headers=admin).json()["items"] and all(
        u["username"] != "mallory" for u in c.get(f"{V}/users", headers=admin).json()["items"]
    )


def test_providers_from_settings_are_applied_and_locked(tmp_path: Path, fresh_database_url: str) -> None:
    c = _client(tmp_path, fresh_database_url, sso_providers=json.dumps([PROVIDER]))
    admin = {"Authorization": f"Bearer {_token(c, 'admin', ADMIN_PASSWORD)}"}
    [row] = c.get(f"{V}/identity-providers", headers=admin).json()
    assert row["name"] == "corp" and row["managedBy"] == "settings" and row["hasClientSecret"]
    assert row["adminGroups"] == ["platform-admins"]
    assert row["redirectUri"].endswith("/login/sso/corp/callback")
    assert "client-secret-never-shown" not in json.dumps(row)
    assert c.get(f"{V}/organizations/corp", headers=admin).status_code == 200  # made for it
    r = c.patch(f"{V}/identity-providers/{row['id']}", json={"displayName": "x"}, headers=admin)
    assert r.status_code == 409 and "ATOLL_SSO_PROVIDERS" in r.json()["detail"]
    public = c.get(f"{V}/auth/providers").json()
    assert public == [{"name": "corp", "displayName": "Corp SSO", "signInUrl": public[0]["signInUrl"]}]
    assert "Sign in with Corp SSO" in c.get("/login").text


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ({"issuer": "http://idp.example.test"}, "https"),
        ({"issuer": "ftp://idp.example.test"}, "issuer"),
        ({"scopes": "profile email"}, "openid"),
        ({"name": "Not A Name"}, "name"),
        ({"bogus": 1}, "unknown field"),
        ({"adminGroups": "admins"}, "adminGroups must be a list of strings"),
        ({"scopes": ["openid"]}, "scopes must be a string"),
        ({"enabled": "yes"}, "enabled must be true or false"),
    ],
)
def test_a_bad_provider_in_settings_stops_the_start_with_its_name(
    tmp_path: Path, fresh_database_url: str, entry: dict[str, Any], says: str
) -> None:
    with pytest.raises(Invalid) as e:
        create_app(
            make_settings(tmp_path, fresh_database_url, sso_providers=json.dumps([{**PROVIDER, **entry}]))
        )
    assert says in e.value.detail and "ATOLL_SSO_PROVIDERS" in e.value.detail


def test_the_api_checks_each_provider_field(tmp_path: Path, fresh_database_url: str) -> None:
    c = _client(tmp_path, fresh_database_url)
    admin = {"Authorization": f"Bearer {_token(c, 'admin', ADMIN_PASSWORD)}"}
    body = {k: v for k, v in PROVIDER.items() if k != "organization"} | {
        "organizationId": "default",
        "name": "api-made",
    }
    for change, field in [
        ({"issuer": "http://10.0.0.5/realms/x"}, "issuer"),
        ({"scopes": "email"}, "scopes"),
        ({"organizationId": "no-such-org"}, "organizationId"),
        ({"clientId": ""}, "clientId"),
    ]:
        r = c.post(f"{V}/identity-providers", json=body | change, headers=admin)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == field, (change, r.text)
    assert c.get(f"{V}/identity-providers", headers=admin).json() == []
    r = c.post(f"{V}/identity-providers", json=body, headers=admin)
    assert r.status_code == 201
    assert c.post(f"{V}/identity-providers", json=body, headers=admin).status_code == 409


def test_a_provider_dropped_from_settings_is_turned_off_and_one_with_users_is_not_removed(
    tmp_path: Path, fresh_database_url: str
) -> None:
    from atoll.store.tables import ExternalIdentity, IdentityProvider, User

    settings = make_settings(tmp_path, fresh_database_url, sso_providers=json.dumps([PROVIDER]))
    app = create_app(settings)
    with app.state.db.transaction() as s:
        provider = s.query(IdentityProvider).one()
        user = s.query(User).filter_by(username="admin").one()
        s.add(ExternalIdentity(provider_id=provider.id, subject="sub-1", user_id=user.id))
    app.state.db.dispose()
    again = TestClient(create_app(make_settings(tmp_path, fresh_database_url, sso_providers="")))
    admin = {"Authorization": f"Bearer {_token(again, 'admin', ADMIN_PASSWORD)}"}
    [row] = again.get(f"{V}/identity-providers", headers=admin).json()
    assert (row["enabled"], row["managedBy"]) == (False, "api")
    assert again.get(f"{V}/auth/providers").json() == []
    r = again.delete(f"{V}/identity-providers/{row['id']}", headers=admin)
    assert r.status_code == 409 and "turn it off instead" in r.json()["detail"]
