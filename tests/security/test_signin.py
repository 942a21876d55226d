"""Sign-in protection and the password policy (issue 14, finding 7 and item 6).

Before: 130 wrong passwords in a row got 401 each, never 429, and "password" or "12345678"
were accepted as passwords. Now failed password checks are counted per account and per client
address in the database; past the limit the account or address is locked out (429 with
Retry-After) before any password is checked, and passwords must pass zxcvbn and a length floor.

The in-process app runs on SQLite and PostgreSQL (db_backend); each test signs in from its own
client address, so the address counts of one test never touch another's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from atoll.app import create_app
from atoll.domain import auth
from atoll.errors import Invalid
from atoll.settings import Settings
from tests.api.conftest import make_settings
from tests.e2e.cli import Cli
from tests.support.server import ADMIN_PASSWORD, RunningServer, start_server

V = "/api/v1"
ACCOUNT_LIMIT = 20  # the acceptance rule, and the default
ADDRESS_LIMIT = 30
SMALL_ACCOUNT_LIMIT = 3
SMALL_ADDRESS_LIMIT = 6
LOCKOUT_S = 2  # short, so that a test can wait for a lockout to end
LOCKOUT_MAX_S = 8
USER_PASSWORD = "tidal-Basin-Lantern-42"
WRONG = "not-the-password-at-all"


@pytest.fixture(scope="module")
def app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    settings = make_settings(
        tmp_path_factory.mktemp("data"),
        database_url,
        controllers=False,
        signin_account_failures=ACCOUNT_LIMIT,
        signin_address_failures=ADDRESS_LIMIT,
        signin_lockout_s=LOCKOUT_S,
        signin_lockout_max_s=LOCKOUT_MAX_S,
    )
    application = create_app(settings)
    yield application
    application.state.db.dispose()


@pytest.fixture(scope="module")
def small_app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    """Low limits, for the rules that do not depend on the number (each failure costs an argon2
    check, slow on a busy machine). It shares the database, so `user` accounts exist here too."""
    settings = make_settings(
        tmp_path_factory.mktemp("data-small"),
        database_url,
        controllers=False,
        signin_account_failures=SMALL_ACCOUNT_LIMIT,
        signin_address_failures=SMALL_ADDRESS_LIMIT,
        signin_lockout_s=LOCKOUT_S,
        signin_lockout_max_s=LOCKOUT_MAX_S,
    )
    application = create_app(settings)
    yield application
    application.state.db.dispose()


_addresses = iter(range(1, 250))


def client_from(app: FastAPI, address: str | None = None) -> TestClient:
    """A client signing in from an address of its own (TEST-NET-2), unless one is given."""
    return TestClient(app, client=(address or f"198.51.100.{next(_addresses)}", 50000))


@pytest.fixture(scope="module")
def admin(app: FastAPI) -> TestClient:
    c = client_from(app)
    r = c.post(f"{V}/auth/tokens", json={"username": "admin", "password": ADMIN_PASSWORD, "name": "t"})
    assert r.status_code == 201, r.text
    c.headers["Authorization"] = f"Bearer {r.json()['token']}"
    return c


_names = iter(range(1, 1000))


@pytest.fixture
def user(admin: TestClient) -> str:
    """A fresh account with USER_PASSWORD."""
    name = f"user{next(_names)}"
    r = admin.post(f"{V}/users", json={"username": name, "password": USER_PASSWORD})
    assert r.status_code == 201, r.text
    return name


def token(c: TestClient, username: str, password: str) -> httpx.Response:
    return c.post(f"{V}/auth/tokens", json={"username": username, "password": password, "name": "t"})


def session(c: TestClient, username: str, password: str) -> httpx.Response:
    return c.post(f"{V}/auth/sessions", json={"username": username, "password": password})


def assert_throttled(r: httpx.Response, limit_s: int = LOCKOUT_S) -> int:
    """A 429 problem+json with a Retry-After of at most `limit_s` seconds; returns it."""
    assert r.status_code == 429, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.text
    body = r.json()
    assert body["status"] == 429 and body["title"] == "Too many requests"
    assert "too many failed sign-ins" in body["detail"]
    retry = int(r.headers["Retry-After"])
    assert 1 <= retry <= limit_s, r.headers
    return retry


def assert_weak(r: httpx.Response, field: str = "password") -> str:
    """A 422 problem+json naming `field`; returns its message."""
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.text
    errors = r.json()["errors"]
    assert errors[0]["field"] == field, r.text
    return str(errors[0]["message"])


# --- throttling ------------------------------------------------------------------------------


def test_twenty_wrong_passwords_lock_the_account_until_the_lockout_ends(app: FastAPI, user: str) -> None:
    c = client_from(app)
    for _ in range(ACCOUNT_LIMIT):
        assert token(c, user, WRONG).status_code == 401
    # The 21st attempt is refused before its password is looked at: the right one gets 429 too.
    retry = assert_throttled(token(c, user, USER_PASSWORD))
    # From another address as well: the lockout is the account's.
    assert_throttled(token(client_from(app), user, USER_PASSWORD))
    time.sleep(retry + 0.2)
    assert token(c, user, USER_PASSWORD).status_code == 201


def test_lockouts_in_a_row_grow_longer(small_app: FastAPI, user: str) -> None:
    c = client_from(small_app)
    for _ in range(SMALL_ACCOUNT_LIMIT):
        assert token(c, user, WRONG).status_code == 401
    time.sleep(assert_throttled(token(c, user, WRONG)) + 0.2)
    c = client_from(small_app)  # a second round from elsewhere, under that address's limit
    for _ in range(SMALL_ACCOUNT_LIMIT):
        assert token(c, user, WRONG).status_code == 401
    retry = assert_throttled(token(c, user, USER_PASSWORD), limit_s=2 * LOCKOUT_S)
    assert retry > LOCKOUT_S


def test_a_successful_sign_in_clears_the_account_count(small_app: FastAPI, user: str) -> None:
    c = client_from(small_app)
    for _ in range(SMALL_ACCOUNT_LIMIT - 1):
        assert token(c, user, WRONG).status_code == 401
    assert token(c, user, USER_PASSWORD).status_code == 201
    c = client_from(small_app)  # the address's own count is not cleared; stay under its limit
    for _ in range(SMALL_ACCOUNT_LIMIT - 1):
        assert token(c, user, WRONG).status_code == 401
    assert token(c, user, USER_PASSWORD).status_code == 201
    # Counted afresh from that success: the limit in a row locks the account out.
    for _ in range(SMALL_ACCOUNT_LIMIT):
        assert token(c, user, WRONG).status_code == 401
    assert_throttled(token(c, user, USER_PASSWORD))


def test_sessions_endpoint_is_throttled_and_shares_the_count(app: FastAPI, user: str) -> None:
    c = client_from(app)
    for i in range(ACCOUNT_LIMIT):
        sign_in = session if i % 2 else token
        assert sign_in(c, user, WRONG).status_code == 401
    r = session(c, user, USER_PASSWORD)
    assert_throttled(r)
    assert "set-cookie" not in r.headers


def test_unknown_usernames_are_locked_out_like_real_ones(small_app: FastAPI) -> None:
    """The answers do not tell which usernames exist: a made-up name locks out the same way."""
    c = client_from(small_app)
    for _ in range(SMALL_ACCOUNT_LIMIT):
        assert token(c, "nobody-by-this-name", WRONG).status_code == 401
    assert_throttled(token(c, "nobody-by-this-name", WRONG))


def test_one_address_guessing_at_many_usernames_is_locked_out(small_app: FastAPI, user: str) -> None:
    address = "203.0.113.7"
    c = client_from(small_app, address)
    for i in range(SMALL_ADDRESS_LIMIT):
        assert token(c, f"guess{i}", WRONG).status_code == 401  # one guess per name
    r = token(c, user, USER_PASSWORD)  # a real account, the right password: not from here
    assert_throttled(r)
    assert "from this address" in r.json()["detail"]
    assert token(client_from(small_app), user, USER_PASSWORD).status_code == 201  # elsewhere: fine


def test_ipv6_neighbours_share_their_64s_count(small_app: FastAPI) -> None:
    for i in range(SMALL_ADDRESS_LIMIT):
        c = client_from(small_app, f"2001:db8:1:2::{i + 1:x}")
        assert token(c, f"v6guess{i}", WRONG).status_code == 401
    r = token(client_from(small_app, "2001:db8:1:2:ffff::1"), "v6guess-last", WRONG)
    assert_throttled(r)
    assert "from this address" in r.json()["detail"]


def test_attempts_at_the_same_time_cannot_slip_past_the_limit(small_app: FastAPI, user: str) -> None:
    c = client_from(small_app)
    with ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(lambda _: token(c, user, WRONG).status_code, range(SMALL_ACCOUNT_LIMIT + 6)))
    assert sorted(set(codes)) == [401, 429], codes
    assert codes.count(401) <= SMALL_ACCOUNT_LIMIT, codes
    assert_throttled(token(c, user, USER_PASSWORD))


def _login_form(c: TestClient, username: str, password: str) -> httpx.Response:
    if "atoll_presession" not in c.cookies:
        assert c.get("/login").status_code == 200
    csrf = c.cookies["atoll_presession"]
    data = {"username": username, "password": password, "next": "/", auth.CSRF_FIELD: csrf}
    return c.post("/login", data=data, follow_redirects=False)


def test_the_web_sign_in_form_is_throttled_with_a_readable_message(small_app: FastAPI, user: str) -> None:
    c = client_from(small_app)
    for _ in range(SMALL_ACCOUNT_LIMIT):
        r = _login_form(c, user, WRONG)
        assert r.status_code == 401 and "wrong username or password" in r.text
    r = _login_form(c, user, USER_PASSWORD)
    assert r.status_code == 429, r.text
    assert 1 <= int(r.headers["Retry-After"]) <= LOCKOUT_S
    assert r.headers["content-type"].startswith("text/html")
    assert "too many failed sign-ins for this account; try again in" in r.text
    assert auth.SESSION_COOKIE not in c.cookies
    time.sleep(int(r.headers["Retry-After"]) + 0.2)
    r = _login_form(c, user, USER_PASSWORD)
    assert r.status_code == 303 and auth.SESSION_COOKIE in c.cookies


def test_web_and_api_sign_ins_share_the_count(app: FastAPI, user: str) -> None:
    c = client_from(app)
    for i in range(ACCOUNT_LIMIT):
        r = token(c, user, WRONG) if i % 2 else _login_form(c, user, WRONG)
        assert r.status_code == 401
    assert _login_form(c, user, USER_PASSWORD).status_code == 429


def test_guessing_the_current_password_on_a_password_change_is_throttled(
    small_app: FastAPI, user: str
) -> None:
    c = client_from(small_app)
    tok = token(c, user, USER_PASSWORD).json()["token"]
    c.headers["Authorization"] = f"Bearer {tok}"
    body = {"currentPassword": WRONG, "newPassword": "another-Strong-Passphrase-7"}
    for _ in range(SMALL_ACCOUNT_LIMIT):
        r = c.put(f"{V}/users/me/password", json=body)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "currentPassword"
    assert_throttled(c.put(f"{V}/users/me/password", json={**body, "currentPassword": USER_PASSWORD}))


# --- the password policy ---------------------------------------------------------------------

WEAK = ["password", "12345678", "aaaaaaaaaaaa", "password1234", "qwertyuiop", "1234567890"]


@pytest.mark.parametrize("password", WEAK)
def test_weak_passwords_are_refused_when_an_admin_creates_a_user(admin: TestClient, password: str) -> None:
    r = admin.post(f"{V}/users", json={"username": "weakling", "password": password})
    assert_weak(r)
    assert all(u["username"] != "weakling" for u in admin.get(f"{V}/users").json()["items"])


def test_the_refusal_says_what_to_change(admin: TestClient) -> None:
    message = assert_weak(admin.post(f"{V}/users", json={"username": "weakling", "password": "password"}))
    assert message == (
        "password must be at least 10 characters and is too easy to guess: "
        "This is a top-10 common password. Add another word or two. Uncommon words are better."
    )
    message = assert_weak(admin.post(f"{V}/users", json={"username": "weakling", "password": "aaaaaaaaaaaa"}))
    assert message.startswith('password is too easy to guess: Repeats like "aaa" are easy to guess.')


def test_the_username_is_refused_as_the_password(admin: TestClient) -> None:
    r = admin.post(f"{V}/users", json={"username": "margaret.hamilton", "password": "margaret.hamilton"})
    assert_weak(r)
    r = admin.post(f"{V}/users", json={"username": "margaret.hamilton", "password": "margaret.hamilton1"})
    assert_weak(r)


def test_weak_new_passwords_are_refused(app: FastAPI, user: str) -> None:
    c = client_from(app)
    c.headers["Authorization"] = f"Bearer {token(c, user, USER_PASSWORD).json()['token']}"
    body = {"currentPassword": USER_PASSWORD, "newPassword": "12345678"}
    assert_weak(c.put(f"{V}/users/me/password", json=body), field="newPassword")
    assert token(c, user, USER_PASSWORD).status_code == 201  # unchanged


def test_weak_passwords_are_refused_when_accepting_an_invite(app: FastAPI, admin: TestClient) -> None:
    org = admin.get(f"{V}/organizations").json()["items"][0]["id"]
    com = admin.post(f"{V}/communities", json={"organizationId": org, "name": "signin-com"}).json()
    prj = admin.post(f"{V}/projects", json={"communityId": com["id"], "name": "signin-prj"}).json()
    inv = admin.post(f"{V}/projects/{prj['id']}/invites", json={"role": "viewer"}).json()
    anon, url = client_from(app), f"{V}/invites/{inv['token']}/accept"
    assert_weak(anon.post(url, json={"username": "newbie", "password": "password"}))
    r = anon.post(url, json={"username": "newbie", "password": USER_PASSWORD})
    assert r.status_code == 200, r.text


def test_a_weak_bootstrap_admin_password_is_refused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, admin_password="12345678")
    with pytest.raises(Invalid) as e:
        create_app(settings)
    assert e.value.field == "ATOLL_ADMIN_PASSWORD"


# --- the real server and the CLI -------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_admin(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    cli = Cli(tmp_path_factory.mktemp("admin-config"))
    cli.ok("login", "--url", server.url, "--username", "admin", "--password", ADMIN_PASSWORD)
    return cli


def test_the_cli_refuses_a_weak_password_in_one_line(cli_admin: Cli) -> None:
    line = cli_admin.fail("user", "create", "zed", "--password", "password")
    assert line.startswith("error: password: password must be at least 10 characters and is too easy"), line
    line = cli_admin.fail("user", "create", "zed", "--password", "qwertyuiop")
    assert line.startswith("error: password: password is too easy to guess: This is a top-100"), line
    cli_admin.ok("user", "create", "zed", "--password", USER_PASSWORD)


def test_the_cli_login_says_when_to_try_again(server: RunningServer, cli_admin: Cli, tmp_path: Path) -> None:
    cli_admin.ok("user", "create", "yolanda", "--password", USER_PASSWORD)
    forwarded = {"X-Forwarded-For": "192.0.2.55"}  # the server trusts a proxy on 127.0.0.1
    for _ in range(ACCOUNT_LIMIT):
        r = httpx.post(
            f"{server.url}{V}/auth/tokens",
            json={"username": "yolanda", "password": WRONG, "name": "t"},
            headers=forwarded,
        )
        assert r.status_code == 401
    line = Cli(tmp_path).fail("login", "--url", server.url, "-u", "yolanda", "--password", USER_PASSWORD)
    assert "too many failed sign-ins for this account; try again in 5 minutes" in line, line


def test_atoll_up_refuses_a_weak_admin_password_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError) as e:
        start_server(tmp_path / "data", extra_env={"ATOLL_ADMIN_PASSWORD": "password1234"}, login=False)
    log = str(e.value)
    assert "Traceback" not in log, log
    assert "error: ATOLL_ADMIN_PASSWORD is too easy to guess: This is a very common password." in log, log
