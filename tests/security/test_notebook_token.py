"""A project's JupyterLab secret never reaches a browser, and is new at every start.

A real `atoll up`, a real JupyterLab behind its `/nb/<project>/` gateway. Jupyter renders its own
token into every page it builds from its templates (404 and other error pages included, as
``data-jupyter-api-token``) and into /lab's page config, and sets login cookies: none of that may
carry the secret the gateway authenticates with. Jupyter is asked directly too: it must know no
token it could render, take the secret only from the gateway's Authorization header, and pass
none of it on to the kernels it starts.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from atoll.domain import auth
from atoll.notebooks.server import SECRET_ENV
from tests.notebooks.conftest import (
    Kernel,
    boot,
    new_project,
    notebook_secret,
    open_and_wait,
    stop_all,
    stop_and_wait,
)
from tests.support.server import ADMIN_PASSWORD, RunningServer

API_TOKEN = re.compile(r'data-jupyter-api-token="([^"]*)"')
# Paths below /nb/<project>/ that render something: Jupyter's and Lab's pages, error pages (404
# HTML and JSON, 400, 405), the REST API, the login/logout pages Jupyter would offer.
PATHS = (
    "/lab",
    "/lab/tree/nope.ipynb",
    "/tree",
    "/no-such-page",
    "/files/no-such-file.txt",
    "/edit/no-such-file.txt",
    "/view/no-such-file.txt",
    "/nbconvert/html/no-such.ipynb",
    "/api",
    "/api/status",
    "/api/me",
    "/api/kernels",
    "/api/kernels/not-a-kernel",
    "/api/sessions",
    "/api/contents",
    "/api/contents/no-such-file.txt",
    "/api/kernelspecs",
    "/api/config/notebook",
    "/api/terminals",
    "/lab/api/settings",
    "/lab/api/workspaces",
    "/login",
    "/logout",
    "/lab?token=guess",
)


@pytest.fixture(scope="module")
def atoll(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = boot(tmp_path_factory.mktemp("nb-token"))
    try:
        yield server
    finally:
        try:
            stop_all(server)
        finally:
            server.stop()


@pytest.fixture(scope="module")
def project(atoll: RunningServer) -> dict[str, Any]:
    return new_project(atoll, "nb-secret")


def _browser(atoll: RunningServer) -> httpx.Client:
    """A client signed in as a browser is: Atoll's session cookie (no API token)."""
    client = httpx.Client(base_url=atoll.url, timeout=30)
    r = client.post("/api/v1/auth/sessions", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert r.status_code == 200, r.text
    assert auth.SESSION_COOKIE in client.cookies
    return client


def _assert_carries_no_credential(resp: httpx.Response, secret: str, what: str) -> None:
    assert secret not in resp.text, f"{what}: the notebook secret is in the body"
    for k, v in resp.headers.multi_items():
        assert secret not in v, f"{what}: the notebook secret is in the header {k}"
    for found in API_TOKEN.findall(resp.text):
        assert found == "", f"{what}: data-jupyter-api-token={found!r}"
    for cookie in resp.headers.get_list("set-cookie"):
        name = cookie.partition("=")[0].strip()
        # Jupyter's login cookie (username-<host>) would let a browser in without Atoll.
        assert not name.startswith("username-"), f"{what}: Jupyter set its login cookie {cookie!r}"
    if "jupyter-config-data" in resp.text:
        assert _page_config(resp.text).get("token", "") == "", f"{what}: page_config carries a token"


def _page_config(html: str) -> dict[str, Any]:
    """JupyterLab's page config, the JSON it embeds in /lab for its front end."""
    m = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', html, re.S)
    assert m is not None, "no page config in the page"
    config: dict[str, Any] = json.loads(m.group(1))
    return config


def test_no_response_under_nb_carries_the_notebook_secret(
    atoll: RunningServer, project: dict[str, Any]
) -> None:
    pid = project["id"]
    open_and_wait(atoll, pid)
    secret = notebook_secret(atoll, pid).secret
    assert len(secret) == 64
    bearer = {"Authorization": f"Bearer {atoll.admin_token}"}
    with (
        contextlib.closing(_browser(atoll)) as browser,
        httpx.Client(base_url=atoll.url, timeout=30) as plain,
    ):
        for path in PATHS:
            url = f"/nb/{pid}{path}"
            for who, client, headers in (
                ("browser", browser, {"Accept": "text/html", "Sec-Fetch-Mode": "navigate"}),
                ("api token", plain, {**bearer, "Accept": "application/json"}),
            ):
                r = client.get(url, headers=headers)
                assert r.status_code != 401, (who, url, r.text[:300])
                _assert_carries_no_credential(r, secret, f"{who} GET {url} ({r.status_code})")
        # The 404 page is Jupyter's own template (the one that carried the token), served to a user.
        r = browser.get(f"/nb/{pid}/no-such-page", headers={"Accept": "text/html"})
        assert r.status_code == 404 and "<html" in r.text.lower()
        lab = browser.get(f"/nb/{pid}/lab", headers={"Accept": "text/html"})
        assert lab.status_code == 200 and _page_config(lab.text)["token"] == ""
        # Error pages of writes (405, 400, 404 JSON), sent as Atoll's own page would (same origin).
        origin = {"Origin": atoll.url, "X-CSRF-Token": "unused"}
        for method, path in (
            ("POST", "/lab"),
            ("POST", "/api/kernels/not-a-kernel/interrupt"),
            ("PUT", "/api/contents/dir/missing/x.txt"),
            ("PATCH", "/api/sessions/nope"),
            ("DELETE", "/api/kernels/not-a-kernel"),
        ):
            r = browser.request(
                method, f"/nb/{pid}{path}", headers={**origin, **bearer}, content=b"{bad json"
            )
            assert r.status_code >= 400, (method, path, r.status_code)
            _assert_carries_no_credential(r, secret, f"{method} {path} ({r.status_code})")
        # A credential of Jupyter's kind from the client is no way in: not an Atoll credential, it
        # is refused before Jupyter is asked (and never passed on: the gateway sends its own).
        r = plain.get(f"/nb/{pid}/api/status", headers={"Authorization": f"token {secret}"})
        assert r.status_code == 401
        r = plain.get(f"/nb/{pid}/api/status?token={secret}")
        assert r.status_code == 401


def test_jupyter_knows_no_renderable_token(atoll: RunningServer, project: dict[str, Any]) -> None:
    """Asked directly, Jupyter takes the secret only as the gateway sends it, and renders nothing."""
    pid = project["id"]
    open_and_wait(atoll, pid)
    direct = notebook_secret(atoll, pid)
    gateway_auth = {"Authorization": f"token {direct.secret}"}
    with httpx.Client(timeout=30, trust_env=False) as jupyter:
        assert jupyter.get(f"{direct.url}/api/status", headers=gateway_auth).status_code == 200
        for path in ("/no-such-page", "/lab", "/tree", "/api/me", "/api/contents/missing.txt"):
            r = jupyter.get(direct.url + path, headers={**gateway_auth, "Accept": "text/html"})
            _assert_carries_no_credential(r, direct.secret, f"direct GET {path} ({r.status_code})")
        # Neither the URL's ?token= nor a cookie is a way in; a wrong secret is not either.
        assert jupyter.get(f"{direct.url}/api/status?token={direct.secret}").status_code == 403
        assert (
            jupyter.get(f"{direct.url}/api/status", headers={"Authorization": "token wrong"}).status_code
            == 403
        )
        assert (
            jupyter.get(f"{direct.url}/api/status", headers={"Authorization": "Bearer wrong"}).status_code
            == 403
        )
        # No login form to type a token into.
        assert jupyter.get(f"{direct.url}/login", headers=gateway_auth).status_code == 404
    # The kernels the server starts do not inherit it (a notebook's code is the project's, but
    # the secret is the gateway's).
    kernel = Kernel(atoll, pid)
    try:
        env = json.loads(kernel.run("import json, os; print(json.dumps(dict(os.environ)))"))
        assert SECRET_ENV not in env and "JUPYTER_TOKEN" not in env
        assert not [k for k, v in env.items() if direct.secret in v], "a kernel's env var holds the secret"
    finally:
        kernel.close()


def test_the_secret_is_new_at_every_start(atoll: RunningServer, project: dict[str, Any]) -> None:
    pid = project["id"]
    open_and_wait(atoll, pid)
    first = notebook_secret(atoll, pid)
    stop_and_wait(atoll, pid)
    open_and_wait(atoll, pid)
    second = notebook_secret(atoll, pid)
    assert second.secret != first.secret
    status = f"{second.url}/api/status"
    # The old secret opens nothing on the new server.
    old = httpx.get(status, headers={"Authorization": f"token {first.secret}"}, trust_env=False)
    assert old.status_code == 403
    # Nor does anything a client kept from talking to it: Jupyter hands out no login cookie that
    # would outlive (or stand in for) the secret.
    with httpx.Client(timeout=30, trust_env=False) as jupyter:
        assert jupyter.get(status, headers={"Authorization": f"token {second.secret}"}).is_success
        assert jupyter.get(
            f"{second.url}/lab", headers={"Authorization": f"token {second.secret}"}
        ).is_success
        kept = jupyter.get(status, headers={"Authorization": f"token {first.secret}"})
        assert kept.status_code == 403, f"a cookie let the client in: {list(jupyter.cookies.keys())}"
    # And the gateway uses the new one: the restarted server works through it.
    kernel = Kernel(atoll, pid)
    try:
        assert kernel.run("print(6 * 7)").strip() == "42"
    finally:
        kernel.close()


def test_secret_env_name_matches_the_identity_provider() -> None:
    """jupyter_identity.py runs where Atoll is not installed, so it repeats the variable's name."""
    source = (Path(__file__).parents[2] / "src" / "atoll" / "notebooks" / "jupyter_identity.py").read_text()
    assert f'SECRET_ENV = "{SECRET_ENV}"' in source
