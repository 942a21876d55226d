"""`atoll login --sso`: the real CLI waits on its loopback port while a browser signs in at the
provider; its token works, is audited, and an admin's SSO sign-out ends it."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.cli import ATOLL, Cli
from tests.sso.conftest import IDP_PASSWORD, Acme, audit_records
from tests.support.oidc_provider import Provider, confirm_cli, walk
from tests.support.server import RunningServer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def marie(provider: Provider) -> Any:
    return provider.add_user("marie", IDP_PASSWORD, "Marie Curie", "marie@example.test")


def _start_login(cli: Cli, server: RunningServer, *extra: str) -> tuple[subprocess.Popen[str], str]:
    """`atoll login --sso --no-browser`, running; the sign-in URL it printed."""
    proc = subprocess.Popen(
        [ATOLL, "login", "--url", server.url, "--sso", "--no-browser", "--sso-timeout", "60", *extra],
        env=cli.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        if line.strip().startswith("http"):
            return proc, line.strip()
    proc.kill()
    raise AssertionError(f"no sign-in URL printed: {proc.communicate()}")


def _loopback(browser: httpx.Client, provider: Provider, url: str, answer: str = "allow") -> str:
    """Sign in at the provider and answer Atoll's question whether the CLI may sign in; the URL
    of the CLI's loopback that Atoll sends the browser on to."""
    r = walk(browser, provider, url, "marie", IDP_PASSWORD)
    if r.status_code == 200:
        assert "Sign in the Atoll CLI?" in r.text and "marie" in r.text
        r = confirm_cli(browser, r, answer)
    assert r.status_code == 303, r.text[:500]
    target: str = r.headers["location"]
    assert target.startswith("http://127.0.0.1:") and "/callback?" in target
    return target


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


def test_login_sso_gives_a_working_cli_session_that_an_admin_can_end(
    server: RunningServer, provider: Provider, marie: Any, acme: Acme, tmp_path: Path
) -> None:
    cli = Cli(tmp_path / "marie-config")
    proc, url = _start_login(cli, server)
    try:
        assert url.startswith(f"{server.url}/login/sso/canaille?cli_port=")
        with httpx.Client(timeout=30) as browser:
            page = browser.get(_loopback(browser, provider, url))
            assert page.status_code == 200 and "signed in" in page.text
    finally:
        code, out, err = _finish(proc)
    assert code == 0, (out, err)
    assert "Logged in as marie" in out
    assert cli.ok("whoami").out.strip() == f"marie at {server.url}"
    token = cli.config()["token"]
    # The token's creation is one audit record, without the token.
    created = audit_records(server, acme.org, action="create_token_sso", actor="marie")
    assert len(created) == 1 and created[0]["result"] == "success"
    assert token not in str(created) and token[:10] in created[0]["detail"]
    # A token she makes with it (marie has no password: everything she has came through SSO).
    with server.api(token) as as_marie:
        extra = as_marie.post("/tokens", json={"name": "notebook-ci"}).json()["token"]
    # The admin of the organization ends marie's SSO sessions: the CLI's token stops working.
    with server.api() as api:
        r = api.post(f"/users/{cli.json('whoami')['id']}:end-sso-sessions")
        assert r.status_code == 200 and r.json()["tokensRevoked"] >= 2, r.text
    with server.api(extra) as as_marie:
        assert as_marie.get("/users/me").status_code == 401
    assert "unknown, expired or revoked" in cli.fail("whoami")
    assert len(audit_records(server, acme.org, action="end_sso_sessions")) == 1


def test_the_one_time_code_works_once_and_only_with_the_verifier(
    server: RunningServer, provider: Provider, marie: Any, tmp_path: Path
) -> None:
    """A program on the machine that catches the loopback redirect cannot use the code: it lacks
    the verifier; and the code is spent once the CLI used it."""
    cli = Cli(tmp_path / "marie-again")
    proc, url = _start_login(cli, server)
    try:
        with httpx.Client(timeout=30) as browser:
            loopback = _loopback(browser, provider, url)
            code = httpx.URL(loopback).params["code"]
            thief = httpx.post(
                f"{server.url}/api/v1/auth/sso/tokens", json={"code": code, "verifier": "x" * 43, "name": "t"}
            )
            assert thief.status_code == 401, thief.text
            assert browser.get(loopback).status_code == 200  # now the CLI gets it
    finally:
        rc, out, err = _finish(proc)
    assert rc == 0, (out, err)
    again = httpx.post(f"{server.url}/api/v1/auth/sso/tokens", json={"code": code, "verifier": "x" * 43})
    assert again.status_code == 401


def test_login_sso_reports_a_refused_sign_in_in_one_line(
    server: RunningServer, provider: Provider, idp_client: Any, marie: Any, tmp_path: Path
) -> None:
    cli = Cli(tmp_path / "refused")
    proc, url = _start_login(cli, server)
    try:
        with provider.expired_id_tokens(), httpx.Client(timeout=30) as browser:
            page = browser.get(_loopback(browser, provider, url))
            assert page.status_code == 401 and "has expired" in page.text
    finally:
        code, _, err = _finish(proc)
    assert code == 1
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith("error: sign-in refused: the ID token from 'canaille' has expired")
    )
    assert "Traceback" not in err
    assert not (cli.config_dir / "config.json").exists()  # nothing saved


def test_login_sso_names_unknown_providers(server: RunningServer, tmp_path: Path) -> None:
    cli = Cli(tmp_path / "nobody")
    assert "no identity provider 'okta'" in cli.fail(
        "login", "--url", server.url, "--sso", "--provider", "okta", code=2
    )
    assert "one way to sign in" in cli.fail("login", "--url", server.url, "--sso", "--token", "atl_x", code=2)


def test_a_cli_sign_in_link_from_someone_else_needs_the_person_to_allow_it(
    server: RunningServer, provider: Provider, marie: Any, tmp_path: Path
) -> None:
    """A link carrying another program's loopback port and challenge (sent by someone who hopes
    to catch the code) stops at Atoll's question; no code leaves without a click, and "Cancel"
    tells the waiting CLI so."""
    cli = Cli(tmp_path / "asked")
    proc, url = _start_login(cli, server)
    try:
        with httpx.Client(timeout=30) as browser:
            page = walk(browser, provider, url, "marie", IDP_PASSWORD)
            assert page.status_code == 200 and "Sign in the Atoll CLI?" in page.text
            assert "code=" not in page.text
            done = confirm_cli(browser, page, "deny")
            assert done.status_code == 303 and "error=" in done.headers["location"]
            assert browser.get(done.headers["location"]).status_code == 401
    finally:
        code, _, err = _finish(proc)
    assert code == 1 and "refused in the browser" in err
