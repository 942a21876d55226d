"""The deploy gateway never hands Atoll's own credentials to tenant code, and /metrics is not public.

A real `atoll up` with its gateway (HAProxy), and a command node that echoes every request header
it gets: what it echoes is what any tenant's service (public alias or not) would see. The gateway
shares a host with Atoll's web UI, so a browser sends it Atoll's cookies too (cookies do not
care about ports).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from atoll.domain import auth
from atoll.gateway.messages import ATOLL_COOKIE_PREFIXES, is_atoll_cookie
from atoll.settings import Settings
from tests.deploy.conftest import FAST, HEALTH, create_node, wait_for, wait_healthy
from tests.notebooks.conftest import new_project
from tests.support.server import ADMIN_PASSWORD, RunningServer, start_server, user_password
from tests.support.tenants import stop_workloads

# Echoes the request's headers (all of them, repeats included) as JSON; /set-cookie also tries to
# set a cookie of the tenant's own and one named like Atoll's session.
ECHO = r"""
import http.server, json, os
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = json.dumps({"path": self.path, "headers": [[k.lower(), v] for k, v in self.headers.items()]})
        body = body.encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        if self.path.startswith("/set-cookie"):
            self.send_header("set-cookie", "tenant_cart=abc; Path=/")
            self.send_header("set-cookie", "atoll_session=planted-by-the-service; Path=/; HttpOnly")
            self.send_header("Set-Cookie", " __Host-atoll_session=planted; Path=/; Secure")
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer.daemon_threads = True
http.server.ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), H).serve_forever()
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start_server(tmp_path_factory.mktemp("gw-credentials") / "data", extra_env=FAST)
    try:
        yield srv
    finally:
        srv.stop()
        stop_workloads(srv.data_dir / "runtime")  # its echo nodes' instances outlive the server


@pytest.fixture(scope="module")
def echo(server: RunningServer) -> dict[str, Any]:
    """A project with a healthy echo node behind a public alias `echo-pub` and a private `echo-priv`."""
    project = new_project(server, "gw-cred")
    pid = project["id"]
    n = create_node(server, pid, "echo", command=[sys.executable, "-c", ECHO], healthCheck=HEALTH)
    wait_healthy(server, pid, n["id"])
    with server.api() as api:
        for name, public in (("echo-pub", True), ("echo-priv", False)):
            body = {"name": name, "public": public, "nodes": [{"nodeId": n["id"], "weight": 100}]}
            r = api.post(f"/projects/{pid}/aliases", json=body)
            assert r.status_code == 201, r.text
            assert r.json()["public"] is public

    admin = {"authorization": f"Bearer {server.admin_token}"}

    def routed() -> bool:
        return all(
            httpx.get(f"{server.gateway_url}/alias/{a}/", headers=admin).status_code == 200
            for a in ("echo-pub", "echo-priv")
        )

    wait_for("the gateway to route the echo aliases", routed, 15)
    return {"project": pid, "node": n["id"]}


@pytest.fixture(scope="module")
def browser_cookies(server: RunningServer) -> dict[str, str]:
    """The cookies a browser signed in to Atoll holds: the session, and the pre-sign-in CSRF one."""
    with httpx.Client(base_url=server.url) as client:
        client.get("/login")  # the web UI's pre-session (CSRF double-submit) cookie
        r = client.post("/api/v1/auth/sessions", json={"username": "admin", "password": ADMIN_PASSWORD})
        assert r.status_code == 200, r.text
        jar = {c.name: c.value for c in client.cookies.jar}
    assert auth.SESSION_COOKIE in jar, jar
    jar["csrf"] = r.json()["csrfToken"]  # not a cookie, but a value that must not leak either
    return jar


def _cookie_header(jar: dict[str, str]) -> str:
    atoll_cookies = "; ".join(f"{k}={v}" for k, v in jar.items() if k != "csrf")
    return f"theme=dark; {atoll_cookies}; tenant_pref=blue"


def _echoed(resp: httpx.Response) -> list[tuple[str, str]]:
    assert resp.status_code == 200, resp.text
    return [(k, v) for k, v in resp.json()["headers"]]


def _assert_nothing_of_atoll(seen: list[tuple[str, str]], server: RunningServer, jar: dict[str, str]) -> None:
    text = repr(seen)
    for name, value in jar.items():
        assert value not in text, f"{name} reached the service: {seen}"
    assert "atoll_" not in text, seen
    assert server.admin_token not in text, seen
    assert "atl_" not in text, seen
    assert not any(k in ("proxy-authorization", "x-node-alias", "x-node-id") for k, _ in seen), seen


def test_public_alias_sees_its_own_cookies_but_none_of_atolls(
    server: RunningServer, echo: dict[str, Any], browser_cookies: dict[str, str]
) -> None:
    headers = {
        "cookie": _cookie_header(browser_cookies),
        "authorization": f"Bearer {server.admin_token}",  # an Atoll token, sent to a public alias
        "proxy-authorization": f"Bearer {server.admin_token}",
        "x-csrf-token": "x",
    }
    # Several calls on one connection: the first opens a connection to the instance, the next
    # reuse it; every one must filter.
    with httpx.Client(base_url=server.gateway_url, timeout=10) as client:
        for i in range(4):
            how = {"x-node-alias": "echo-pub"} if i % 2 else {}
            path = "/hello" if i % 2 else "/alias/echo-pub/hello"
            seen = _echoed(client.get(path, headers={**headers, **how}))
            _assert_nothing_of_atoll(seen, server, browser_cookies)
            cookies = [v for k, v in seen if k == "cookie"]
            assert cookies == ["theme=dark; tenant_pref=blue"], seen
            assert not [v for k, v in seen if k == "authorization"], seen
    # The tenant's own credentials pass: a public alias is the service's to authenticate.
    seen = _echoed(
        httpx.get(
            f"{server.gateway_url}/alias/echo-pub/",
            headers={"authorization": "Bearer tenant-own-key", "cookie": "tenant_session=t1"},
        )
    )
    assert ("authorization", "Bearer tenant-own-key") in seen and ("cookie", "tenant_session=t1") in seen
    # Only Atoll's cookies: a Cookie header of nothing else is dropped whole.
    seen = _echoed(
        httpx.get(
            f"{server.gateway_url}/alias/echo-pub/", headers={"cookie": _cookie_header(browser_cookies)}
        )
    )
    assert [v for k, v in seen if k == "cookie"] == ["theme=dark; tenant_pref=blue"]
    only_atoll = f"{auth.SESSION_COOKIE}={browser_cookies[auth.SESSION_COOKIE]}"
    seen = _echoed(httpx.get(f"{server.gateway_url}/alias/echo-pub/", headers={"cookie": only_atoll}))
    assert not [v for k, v in seen if k == "cookie"], seen


def test_private_alias_and_node_keep_the_token_they_consumed(
    server: RunningServer, echo: dict[str, Any], browser_cookies: dict[str, str]
) -> None:
    headers = {"cookie": _cookie_header(browser_cookies), "authorization": f"Bearer {server.admin_token}"}
    routes = (
        ("/alias/echo-priv/x", {}),
        ("/x", {"x-node-alias": "echo-priv"}),
        (f"/node/{echo['node']}/x", {}),
        ("/x", {"x-node-id": echo["node"]}),
    )
    with httpx.Client(base_url=server.gateway_url, timeout=10) as client:
        for _ in range(2):  # a new connection to the instance, then a reused one
            for path, how in routes:
                seen = _echoed(client.get(path, headers={**headers, **how}))
                _assert_nothing_of_atoll(seen, server, browser_cookies)
                assert not [v for k, v in seen if k == "authorization"], (path, seen)
                assert [v for k, v in seen if k == "cookie"] == ["theme=dark; tenant_pref=blue"], seen


def test_a_service_cannot_set_atolls_cookies(server: RunningServer, echo: dict[str, Any]) -> None:
    for _ in range(2):
        r = httpx.get(f"{server.gateway_url}/alias/echo-pub/set-cookie")
        assert r.status_code == 200
        set_cookies = r.headers.get_list("set-cookie")
        assert set_cookies == ["tenant_cart=abc; Path=/"], set_cookies


def test_metrics_need_the_metrics_token_or_an_admin(server: RunningServer, echo: dict[str, Any]) -> None:
    url = server.gateway_url + "/metrics"
    httpx.get(f"{server.gateway_url}/alias/echo-pub/")  # something to count
    anonymous = httpx.get(url)
    assert anonymous.status_code == 401, anonymous.text
    assert "Bearer" in anonymous.headers.get("www-authenticate", "")
    assert "echo" not in anonymous.text and "alias_requests" not in anonymous.text
    assert httpx.get(url, headers={"authorization": "Bearer not-the-token"}).status_code == 401
    assert httpx.get(url, headers={"authorization": "Bearer atl_unknown"}).status_code == 401
    # A user with a role on the project, but not an installation admin.
    with server.api() as api:
        org = api.get("/organizations").json()["items"][0]["id"]
        body = {
            "username": "metrics-peeker",
            "password": user_password("metrics-peeker"),
            "organizationId": org,
        }
        assert api.post("/users", json=body).status_code == 201
        r = api.post(
            f"/projects/{echo['project']}/access-bindings",
            json={"subject": "metrics-peeker", "role": "admin"},
        )
        assert r.status_code in (200, 201), r.text
    r = httpx.post(
        server.url + "/api/v1/auth/tokens",
        json={"username": "metrics-peeker", "password": user_password("metrics-peeker"), "name": "t"},
    )
    peeker = r.json()["token"]
    forbidden = httpx.get(url, headers={"authorization": f"Bearer {peeker}"})
    assert forbidden.status_code == 403 and "alias_requests" not in forbidden.text
    # The metrics token (generated into the data dir, owner-only), as a Prometheus scrape sends it.
    token_file = server.data_dir / "metrics-token"
    assert token_file.stat().st_mode & 0o077 == 0
    token = token_file.read_text().strip()
    ok = httpx.get(url, headers={"authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and 'alias_requests_total{alias_name="echo-pub"}' in ok.text
    # An installation admin's own API token.
    ok = httpx.get(url, headers={"authorization": f"Bearer {server.admin_token}"})
    assert ok.status_code == 200 and "alias_requests_total" in ok.text
    assert httpx.get(server.gateway_url + "/healthz").status_code == 200  # still open: a liveness probe


def test_metrics_token_setting_and_file(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path / "a", metrics_token="from-env").resolved_metrics_token == "from-env"
    first = Settings(data_dir=tmp_path / "b").resolved_metrics_token
    assert len(first) >= 32
    assert Settings(data_dir=tmp_path / "b").resolved_metrics_token == first  # kept, not regenerated
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["metrics-token"]


def test_every_atoll_cookie_name_is_one_the_gateway_cuts() -> None:
    """A cookie Atoll adds later (or renames) must still never reach tenant code."""
    src = Path(__file__).parents[2] / "src" / "atoll"
    names = {auth.SESSION_COOKIE}
    for f in src.rglob("*.py"):
        names.update(re.findall(r'^\w*COOKIE\w*\s*(?::\s*str\s*)?=\s*"([^"]+)"', f.read_text(), re.M))
    assert len(names) >= 3, names  # the session, pre-session (CSRF) and flash cookies
    for name in names:
        assert is_atoll_cookie(name.encode()), f"the gateway would forward the cookie {name!r}"
    # What cuts them is HAProxy's Lua: it must know every prefix the Python rule does.
    lua = (src / "dataplane" / "atoll.lua").read_text()
    for prefix in ATOLL_COOKIE_PREFIXES:
        assert f'"{prefix.decode()}"' in lua, f"atoll.lua does not cut cookies named {prefix!r}…"
