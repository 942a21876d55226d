"""Signing in through a real OpenID provider, and every way a sign-in must be refused: another
audience, a bad signature, an expired ID token, a replayed nonce or response, a provider that is
down. Each attempt is one audit record saying how it ended."""

from __future__ import annotations

import re
from contextlib import closing
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from tests.sso.conftest import IDP_PASSWORD, Acme, audit_records
from tests.support.oidc_provider import Provider, walk
from tests.support.postgres import free_port
from tests.support.server import RunningServer

pytestmark = pytest.mark.e2e


def _browser(server: RunningServer) -> httpx.Client:
    """A browser's cookie jar: Atoll's session and the provider's."""
    return httpx.Client(base_url=server.url, timeout=30)


def _me(http: httpx.Client) -> httpx.Response:
    return http.get("/api/v1/users/me")


@pytest.fixture(scope="module")
def linus(provider: Provider) -> Any:
    return provider.add_user("linus", IDP_PASSWORD, "Linus Pauling", "linus@example.test")


def _sign_in(server: RunningServer, provider: Provider, user: str) -> tuple[httpx.Client, httpx.Response]:
    http = _browser(server)
    r = walk(http, provider, f"{server.url}/login/sso/canaille?next=/account", user, IDP_PASSWORD)
    return http, r


def test_a_provider_user_signs_in_lands_in_the_organization_and_gets_the_project_through_the_group(
    server: RunningServer, provider: Provider, acme: Acme
) -> None:
    ada = provider.add_user("ada", IDP_PASSWORD, "Ada Lovelace", "ada@example.test")
    team = provider.add_group("ML Team", [ada])
    http, r = _sign_in(server, provider, "ada")
    with closing(http):
        assert r.status_code == 303 and r.headers["location"] == "/account", r.text[:500]
        me = _me(http).json()
        assert (me["username"], me["displayName"], me["email"]) == ("ada", "Ada Lovelace", "ada@example.test")
        assert http.get(f"/api/v1/projects/{acme.project}").status_code == 200
        # No password came with the account: none can be set by "changing" it, nor used to sign in.
        account = http.get("/account").text
        assert "has no password here" in account
        token = re.search(r'name="csrf_token" value="([^"]+)"', account)
        assert token is not None
        body = {"currentPassword": "", "newPassword": "a-new-long-passphrase-42"}
        r = http.put("/api/v1/users/me/password", json=body, headers={"X-CSRF-Token": token.group(1)})
        assert r.status_code == 422 and "has no password to change" in r.text
        for password in ("", IDP_PASSWORD):
            r = httpx.post(f"{server.url}/api/v1/auth/tokens", json={"username": "ada", "password": password})
            assert r.status_code == 401
        with server.api() as api:
            members = api.get(f"/groups/{acme.group}/members").json()
            assert [m["username"] for m in members] == ["ada"]
        assert [o["name"] for o in http.get("/api/v1/organizations").json()["items"]] == ["acme"]
        # The group leaves the provider's directory for ada: at her next sign-in the project is gone.
        provider.set_members(team, [])
    http2, r = _sign_in(server, provider, "ada")
    with closing(http2):
        assert r.status_code == 303
        assert http2.get(f"/api/v1/projects/{acme.project}").status_code == 404
    records = audit_records(server, acme.org, action="sign_in_sso", actor="ada")
    assert [x["result"] for x in records] == ["success", "success"]
    assert "joined groups ml-team" in records[1]["detail"]  # newest first: [0] is the second one
    assert "left groups ml-team" in records[0]["detail"]
    assert all(x["via"] == "sso" and x["resourceId"] == acme.org for x in records)


def test_admin_groups_make_organization_admins_and_take_it_back(
    server: RunningServer, provider: Provider, acme: Acme
) -> None:
    grace = provider.add_user("grace", IDP_PASSWORD, "Grace Hopper", "grace@example.test")
    admins = provider.add_group("Atoll Admins", [grace])
    http, _ = _sign_in(server, provider, "grace")
    with closing(http):
        assert http.get(f"/api/v1/organizations/{acme.org}/audit-records").status_code == 200
    provider.set_members(admins, [])
    http, _ = _sign_in(server, provider, "grace")
    with closing(http):
        assert http.get(f"/api/v1/organizations/{acme.org}/audit-records").status_code == 403
    with server.api() as api:
        bindings = api.get(f"/organizations/{acme.org}/access-bindings").json()
        assert [b["role"] for b in bindings if b["subjectName"] == "grace"] == ["member"]


def test_an_id_token_for_another_audience_is_refused(
    server: RunningServer, provider: Provider, idp_client: Any, linus: Any, acme: Acme
) -> None:
    other = provider.add_client([])
    with provider.audience(idp_client, other):
        http, r = _sign_in(server, provider, "linus")
    with closing(http):
        assert r.status_code == 401
        assert "wrong audience" in r.text
        assert _me(http).status_code == 401
    last = audit_records(server, acme.org, action="sign_in_sso")[0]
    assert last["result"] == "denied" and "wrong audience" in last["detail"] and last["actorId"] is None


def test_an_id_token_with_a_bad_signature_is_refused(
    server: RunningServer, provider: Provider, linus: Any, acme: Acme
) -> None:
    http, r = _sign_in(server, provider, "linus")  # Atoll now holds the provider's key
    http.close()
    assert r.status_code == 303
    with provider.signing_with_a_new_key():
        http, r = _sign_in(server, provider, "linus")
    with closing(http):
        assert r.status_code == 401
        assert "bad signature" in r.text
        assert _me(http).status_code == 401
    assert "bad signature" in audit_records(server, acme.org, action="sign_in_sso")[0]["detail"]


def test_an_expired_id_token_is_refused(
    server: RunningServer, provider: Provider, linus: Any, acme: Acme
) -> None:
    with provider.expired_id_tokens():
        http, r = _sign_in(server, provider, "linus")
    with closing(http):
        assert r.status_code == 401
        assert "has expired" in r.text
        assert _me(http).status_code == 401
    assert "has expired" in audit_records(server, acme.org, action="sign_in_sso")[0]["detail"]


def _authorization_url(http: httpx.Client, server: RunningServer) -> str:
    r = http.get(f"{server.url}/login/sso/canaille", follow_redirects=False)
    assert r.status_code == 303, r.text
    return r.headers["location"]


def _with(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(params)
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_a_replayed_nonce_is_refused(
    server: RunningServer, provider: Provider, linus: Any, acme: Acme
) -> None:
    """A code the provider issued for an earlier sign-in's nonce, brought back to a new sign-in
    (its state and PKCE challenge are the new one's, so only the nonce gives it away)."""
    with _browser(server) as http:
        first = _authorization_url(http, server)
        old_nonce = parse_qs(urlsplit(first).query)["nonce"][0]
        r = walk(http, provider, first, "linus", IDP_PASSWORD)
        assert r.status_code == 303  # that one went through
        second = _authorization_url(http, server)
        r = walk(http, provider, _with(second, nonce=old_nonce), "linus", IDP_PASSWORD)
        assert r.status_code == 401
        assert "nonce" in r.text and "replayed or forged" in r.text
    assert "nonce" in audit_records(server, acme.org, action="sign_in_sso")[0]["detail"]


def test_a_replayed_response_is_refused(server: RunningServer, provider: Provider, linus: Any) -> None:
    with _browser(server) as http:
        callback = walk(
            http, provider, _authorization_url(http, server), "linus", IDP_PASSWORD, present=False
        )
        assert "/login/sso/canaille/callback?" in callback
        assert http.get(callback, follow_redirects=False).status_code == 303
    with _browser(server) as thief:
        again = thief.get(callback, follow_redirects=False)
        assert again.status_code == 401
        assert "already used" in again.text
        assert _me(thief).status_code == 401


def test_a_response_is_taken_only_in_the_browser_that_started_the_sign_in(
    server: RunningServer, provider: Provider, linus: Any
) -> None:
    """Someone signs in as themselves, stops at the provider's redirect and sends you the link:
    opening it does not sign you in as them (login CSRF); their own browser still can."""
    with _browser(server) as attacker:
        callback = walk(
            attacker, provider, _authorization_url(attacker, server), "linus", IDP_PASSWORD, present=False
        )
        with _browser(server) as victim:
            r = victim.get(callback, follow_redirects=False)
            assert r.status_code == 401 and "started in another browser" in r.text
            assert _me(victim).status_code == 401
        assert attacker.get(callback, follow_redirects=False).status_code == 303


def test_a_provider_that_is_down_is_refused_with_a_clear_message(server: RunningServer, acme: Acme) -> None:
    with server.api() as api:
        r = api.post(
            "/identity-providers",
            json={
                "name": "gone",
                "issuer": f"http://127.0.0.1:{free_port()}",
                "clientId": "atoll",
                "organizationId": acme.org,
            },
        )
        assert r.status_code == 201, r.text
        assert r.json()["redirectUri"].endswith("/login/sso/gone/callback")
    with _browser(server) as http:
        page = http.get("/login")
        assert "Sign in with gone" in page.text and "Sign in with Canaille" in page.text
        r = http.get("/login/sso/gone", follow_redirects=False)
        assert r.status_code == 502
        assert "cannot be reached" in r.text
    last = audit_records(server, acme.org, action="sign_in_sso")[0]
    assert last["result"] == "failed" and "cannot be reached" in last["detail"]
    with server.api() as api:
        assert api.delete("/identity-providers/gone").status_code == 204


def test_bad_callbacks_change_nothing(server: RunningServer) -> None:
    with _browser(server) as http:
        r = http.get("/login/sso/canaille/callback", params={"state": "made-up", "code": "x"})
        assert r.status_code == 401 and "unknown to Atoll" in r.text
        r = http.get("/login/sso/nope", follow_redirects=False)
        assert r.status_code == 404
        r = http.get("/login/sso/canaille", params={"cli_port": "80"}, follow_redirects=False)
        assert r.status_code == 422
        form = http.get("/login").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert csrf is not None
        data = {"csrf_token": csrf.group(1), "ticket": "made-up-ticket", "answer": "allow"}
        r = http.post("/login/sso/cli", data=data, follow_redirects=False)
        assert r.status_code == 401 and "unknown, answered or expired" in r.text
        with server.api() as api:
            last = api.get("/audit-records", params={"action": "confirm_cli_sign_in", "pageSize": 1}).json()
            assert last["items"][0]["result"] == "denied"
        assert _me(http).status_code == 401


def test_a_sign_in_started_at_another_address_of_the_server_moves_to_its_public_one(
    server: RunningServer, provider: Provider, linus: Any
) -> None:
    """Reached as localhost while the provider comes back to 127.0.0.1 (the public URL): the
    sign-in starts over at the public URL, where the browser's mark then is."""
    other = server.url.replace("127.0.0.1", "localhost")
    with httpx.Client(timeout=30) as http:
        r = http.get(f"{other}/login/sso/canaille?next=/account", follow_redirects=False)
        assert (
            r.status_code == 303 and r.headers["location"] == f"{server.url}/login/sso/canaille?next=/account"
        )
        r = walk(http, provider, r.headers["location"], "linus", IDP_PASSWORD)
        assert r.status_code == 303 and r.headers["location"] == "/account"
