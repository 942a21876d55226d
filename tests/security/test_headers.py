"""Security headers (issue 14, finding 8): every page, API answer, error and static file of the
control plane carries a Content-Security-Policy without inline script, no framing, nosniff and a
Referrer-Policy; HSTS only over https; JupyterLab under /nb keeps its own policy but can be
framed by Atoll's own origin only."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import atoll.web
from atoll.app import create_app
from atoll.web.security_headers import frame_self
from tests.api.conftest import make_settings
from tests.notebooks.conftest import boot, new_project, open_and_wait, stop_all
from tests.support.server import ADMIN_PASSWORD, RunningServer

V = "/api/v1"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    tmp = tmp_path_factory.mktemp("headers")
    application = create_app(make_settings(tmp, f"sqlite:///{tmp / 'atoll.db'}"))

    @application.get("/__test__/boom", include_in_schema=False)
    def boom() -> None:  # an unhandled error: the 500 must carry the headers too
        raise RuntimeError("boom")

    yield application
    application.state.db.dispose()


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def token(client: TestClient) -> str:
    r = client.post(f"{V}/auth/tokens", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


def directives(csp: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in csp.split(";"):
        words = part.split()
        if words:
            out[words[0].lower()] = words[1:]
    return out


def assert_atoll_headers(r: httpx.Response) -> None:
    csp = r.headers.get("content-security-policy")
    assert csp, f"{r.request.url}: no Content-Security-Policy"
    d = directives(csp)
    assert d["default-src"] == ["'self'"]
    assert d["script-src"] == ["'self'"], csp  # no inline script, no eval, no other origin
    assert d["object-src"] == ["'none'"]
    assert d["base-uri"] == ["'self'"]
    assert d["frame-ancestors"] == ["'none'"]
    assert d["form-action"] == ["'self'"]
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp, csp
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] in ("same-origin", "no-referrer")


def test_sign_in_page(client: TestClient) -> None:
    r = client.get("/login")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert_atoll_headers(r)
    assert "strict-transport-security" not in r.headers  # plain http: HSTS means nothing here


TEMPLATES = Path(atoll.web.__file__).parent / "templates"
# What the policy blocks: inline <script> blocks, inline event handlers, javascript: URLs, htmx's
# evaluated attributes (hx-on, js: values), and style attributes (style-src has no 'unsafe-inline').
INLINE = re.compile(
    r"<script(?![^>]*\bsrc=)[^>]*>|\son[a-z]+\s*=|javascript:|\bhx-on|[\"']js:|\sstyle\s*=", re.IGNORECASE
)


def test_templates_have_no_inline_script_or_style() -> None:
    """What the policy forbids is not in the pages either (else the browser would block it)."""
    found = [
        f"{t.name}:{n}: {line.strip()}"
        for t in sorted(TEMPLATES.glob("*.html"))
        for n, line in enumerate(t.read_text().splitlines(), 1)
        if INLINE.search(line)
    ]
    assert not found, "\n".join(found)


def test_rendered_pages_have_no_inline_script(client: TestClient) -> None:
    client.cookies.clear()
    for url in ("/login", "/configurations"):
        html = client.get(url).text
        assert not INLINE.search(html), url


def test_api_answers(client: TestClient, token: str) -> None:
    ok = client.get(f"{V}/organizations", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200
    assert_atoll_headers(ok)
    denied = client.get(f"{V}/organizations")
    assert denied.status_code == 401
    assert_atoll_headers(denied)
    assert_atoll_headers(client.get("/healthz"))


def test_error_answers(client: TestClient) -> None:
    missing = client.get(f"{V}/no-such-thing")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert_atoll_headers(missing)
    page = client.get("/no-such-page", headers={"Accept": "text/html"})
    assert page.status_code == 404
    assert_atoll_headers(page)
    crash = client.get("/__test__/boom")
    assert crash.status_code == 500
    assert_atoll_headers(crash)


def test_static_files(client: TestClient) -> None:
    for path in ("/static/app.css", "/static/atoll.js", "/static/deploy.js"):
        r = client.get(path)
        assert r.status_code == 200, path
        assert_atoll_headers(r)


def test_hsts_only_over_https(client: TestClient, tmp_path: Path) -> None:
    r = client.get("https://testserver/login")
    assert_atoll_headers(r)
    assert r.headers["strict-transport-security"].startswith("max-age=")
    # Behind a TLS-terminating proxy the request may arrive as http: the public URL says https.
    behind = create_app(
        make_settings(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", public_url="https://atoll.example")
    )
    try:
        with TestClient(behind) as c:
            assert c.get("/login").headers["strict-transport-security"].startswith("max-age=")
    finally:
        behind.state.db.dispose()


def test_api_explorer_allows_only_its_own_inline_script(client: TestClient) -> None:
    r = client.get(f"{V}/docs")
    assert r.status_code == 200
    d = directives(r.headers["content-security-policy"])
    assert "'unsafe-inline'" not in d["script-src"]
    assert any(s.startswith("'sha256-") for s in d["script-src"])  # FastAPI's Swagger UI starter
    assert d["frame-ancestors"] == ["'none'"]


def test_notebook_proxy_frameable_by_atoll_only(client: TestClient, token: str) -> None:
    """The gateway's own answers under /nb (not signed in, no server) are not frameable elsewhere."""
    client.cookies.clear()
    for headers in ({}, {"Authorization": f"Bearer {token}"}):
        r = client.get("/nb/prj-none/lab", headers=headers, follow_redirects=False)
        assert r.status_code in (303, 401, 404), r.text
        assert directives(r.headers["content-security-policy"])["frame-ancestors"] == ["'self'"]
        assert r.headers["x-frame-options"] == "SAMEORIGIN"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "same-origin"


@pytest.mark.parametrize(
    ("jupyter", "expected"),
    [
        ("", "frame-ancestors 'self'"),
        ("frame-ancestors 'self'; report-uri /nb/p/api/security/csp-report", None),
        ("frame-ancestors *; default-src 'self'", "default-src 'self'; frame-ancestors 'self'"),
        ("FRAME-ANCESTORS https://evil.example", "frame-ancestors 'self'"),
    ],
)
def test_frame_self(jupyter: str, expected: str | None) -> None:
    out = frame_self(jupyter)
    assert directives(out)["frame-ancestors"] == ["'self'"]
    assert out.count("frame-ancestors") == 1
    if expected is not None:
        assert out == expected
    else:  # the rest of Jupyter's policy is kept as it was
        assert "report-uri /nb/p/api/security/csp-report" in out


# --- a real JupyterLab behind the real server ---------------------------------------------------


@pytest.fixture(scope="module")
def nb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = boot(Path(tmp_path_factory.mktemp("nb-headers")))
    try:
        yield running
    finally:
        try:
            stop_all(running)
        finally:
            running.stop()


def test_jupyterlab_keeps_its_policy_but_only_atoll_may_frame_it(nb_server: RunningServer) -> None:
    project = new_project(nb_server, "csp-lab")
    open_and_wait(nb_server, project["id"])
    with httpx.Client(base_url=nb_server.url, timeout=30) as c:
        r = c.get(
            f"/nb/{project['id']}/lab",
            headers={"Authorization": f"Bearer {nb_server.admin_token}", "Accept": "text/html"},
        )
    assert r.status_code == 200, r.text[:500]
    assert "jupyter" in r.text.lower()
    policies = r.headers.get_list("content-security-policy")
    assert policies
    for csp in policies:
        assert directives(csp)["frame-ancestors"] == ["'self'"], csp
    assert r.headers["x-frame-options"] == "SAMEORIGIN"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "same-origin"
    # Jupyter's own policy is kept (its CSP report address), Atoll's is not forced on JupyterLab:
    # it needs its inline scripts.
    assert "report-uri" in " ".join(policies), policies
    assert "script-src 'self'" not in " ".join(policies)
