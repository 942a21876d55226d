"""NotebookProxy in front of a real JupyterLab: HTTP, kernels over WebSocket, big bodies, isolation."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import time
import uuid

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from atoll.gateway.proxy import NotebookProxy, Upstream
from tests.gateway.conftest import Gateway, Jupyter, serve
from tests.support.postgres import free_port

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def client(gateway: Gateway) -> httpx.Client:
    # The client knows nothing of Jupyter's token; its own credentials must not go upstream either.
    return httpx.Client(
        base_url=gateway.url,
        timeout=30,
        trust_env=False,
        headers={"Authorization": "Bearer atoll-session", "Cookie": "atoll_session=abc"},
    )


def _assert_no_token(resp: httpx.Response, jupyter: Jupyter) -> None:
    assert jupyter.token not in resp.text
    assert all(jupyter.token not in v for v in resp.headers.values())
    assert "set-cookie" not in resp.headers


def test_status_through_proxy_without_the_token(client: httpx.Client, jupyter: Jupyter) -> None:
    resp = client.get("/nb/p1/api/status")
    assert resp.status_code == 200, resp.text
    assert "started" in resp.json()
    _assert_no_token(resp, jupyter)
    # Direct, without the token, Jupyter refuses: the proxy is what added it.
    direct = httpx.get(jupyter.url + "/api/status", trust_env=False, timeout=10)
    assert direct.status_code == 403


def test_other_project_is_404(client: httpx.Client) -> None:
    for path in ("/nb/p2/api/status", "/nb/p2/lab", "/nb/p2/api/kernels"):
        assert client.get(path).status_code == 404


def test_other_project_websocket_refused(gateway: Gateway) -> None:
    ws_url = gateway.url.replace("http", "ws", 1) + "/nb/p2/api/events/subscribe"
    with pytest.raises(Exception, match="404"):
        with connect(ws_url, open_timeout=10):
            pass


def test_lab_page_loads(client: httpx.Client, jupyter: Jupyter) -> None:
    resp = client.get("/nb/p1/lab")
    assert resp.status_code == 200
    assert "text/html" in resp.headers["content-type"]
    assert "jupyter-config-data" in resp.text
    _assert_no_token(resp, jupyter)
    marker = '<script id="jupyter-config-data" type="application/json">'
    config = json.loads(resp.text.split(marker, 1)[1].split("</script>", 1)[0])
    assert config["token"] == ""
    assert config["baseUrl"] == "/nb/p1/"
    assert "@jupyterlab/apputils-extension:announcements" in config["disabledExtensions"]
    # The page's own scripts load through the proxy as well.
    scripts = re.findall(r'<script[^>]+src="([^"]+)"', resp.text)
    assert scripts
    for src in scripts:
        assert client.get(src).status_code == 200, src


def _execute(ws_url: str, code: str, *, deadline_s: float = 30) -> str:
    """Run ``code`` over the kernel channels (JSON protocol) and return its stdout."""
    session = uuid.uuid4().hex
    msg_id = uuid.uuid4().hex
    request = {
        "header": {
            "msg_id": msg_id,
            "username": "test",
            "session": session,
            "msg_type": "execute_request",
            "version": "5.3",
            "date": "",
        },
        "parent_header": {},
        "metadata": {},
        "content": {"code": code, "silent": False, "store_history": False, "allow_stdin": False},
        "buffers": [],
        "channel": "shell",
    }
    out: list[str] = []
    with connect(f"{ws_url}?session_id={session}", open_timeout=15) as ws:
        ws.send(json.dumps(request))
        deadline = time.monotonic() + deadline_s
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no idle status for the request; got {out!r}"
            msg = json.loads(ws.recv(timeout=remaining))
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                raise AssertionError(msg["content"])
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return "".join(out)


def test_kernel_over_websocket(client: httpx.Client, gateway: Gateway, jupyter: Jupyter) -> None:
    created = client.post("/nb/p1/api/kernels", json={"name": "python3"})
    assert created.status_code == 201, created.text
    _assert_no_token(created, jupyter)
    kernel_id = created.json()["id"]
    try:
        ws_url = gateway.url.replace("http", "ws", 1) + f"/nb/p1/api/kernels/{kernel_id}/channels"
        assert _execute(ws_url, "import sys; print(40 + 2)").strip() == "42"
        # A subprotocol the browser offers reaches Jupyter, and Jupyter's choice comes back.
        proto = "v1.kernel.websocket.jupyter.org"
        with connect(f"{ws_url}?session_id={uuid.uuid4().hex}", subprotocols=[proto], open_timeout=15) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == proto
    finally:
        assert client.delete(f"/nb/p1/api/kernels/{kernel_id}").status_code == 204


def test_websocket_ends_on_both_sides(client: httpx.Client, gateway: Gateway) -> None:
    kernel_id = client.post("/nb/p1/api/kernels", json={"name": "python3"}).json()["id"]
    ws_url = gateway.url.replace("http", "ws", 1) + f"/nb/p1/api/kernels/{kernel_id}/channels"
    try:
        # The browser closing first: the proxy closes upstream, and the kernel stays usable.
        for _ in range(3):
            with connect(f"{ws_url}?session_id={uuid.uuid4().hex}", open_timeout=15) as ws:
                ws.close(code=1000)
        assert _execute(ws_url, "print('again')").strip() == "again"
    finally:
        client.delete(f"/nb/p1/api/kernels/{kernel_id}")


def test_websocket_close_codes_pass_both_ways() -> None:
    """Jupyter never closes first on its own, so a small real upstream plays that part."""
    closed_by_client: list[int] = []

    async def ws_echo(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                text = await websocket.receive_text()
                if text == "bye":
                    await websocket.close(code=4001, reason="bye")
                    return
                await websocket.send_text(text)
        except WebSocketDisconnect as exc:
            closed_by_client.append(exc.code)

    with serve(Starlette(routes=[WebSocketRoute("/nb/p1/ws", ws_echo)])) as upstream_url:

        async def resolve(conn: HTTPConnection) -> Upstream | Response:
            return Upstream(upstream_url + "/nb/p1", {})

        proxy = NotebookProxy(resolve)
        with serve(Starlette(routes=[Mount("/nb/{project}", app=proxy)])) as proxy_url:
            ws_url = proxy_url.replace("http", "ws", 1) + "/nb/p1/ws"
            with connect(ws_url, open_timeout=10) as ws:
                ws.send("hi")
                assert ws.recv(timeout=10) == "hi"
                ws.send("bye")
                with pytest.raises(ConnectionClosed) as closed:
                    ws.recv(timeout=10)
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4001, "bye")

            with connect(ws_url, open_timeout=10) as ws:
                ws.send("hi")
                assert ws.recv(timeout=10) == "hi"
                ws.close(code=4002)
            deadline = time.monotonic() + 10
            while not closed_by_client and time.monotonic() < deadline:
                time.sleep(0.02)
            assert closed_by_client == [4002]


def test_large_bodies_stream_both_ways(client: httpx.Client, jupyter: Jupyter) -> None:
    # Download: 24 MiB of random bytes served by Jupyter's /files handler, hashed while streaming.
    blob = os.urandom(24 * 1024 * 1024)
    (jupyter.root_dir / "big.bin").write_bytes(blob)
    digest, size = hashlib.sha256(), 0
    with client.stream("GET", "/nb/p1/files/big.bin") as resp:
        assert resp.status_code == 200
        for chunk in resp.iter_bytes():
            digest.update(chunk)
            size += len(chunk)
    assert size == len(blob)
    assert digest.hexdigest() == hashlib.sha256(blob).hexdigest()

    # Upload: a ~8 MB text file through the contents API, sent as a streamed (chunked) body.
    text = "".join(f"line {i}\n" for i in range(800_000))
    body = json.dumps({"type": "file", "format": "text", "content": text}).encode()

    def chunks() -> object:
        for i in range(0, len(body), 256 * 1024):
            yield body[i : i + 256 * 1024]

    put = client.put("/nb/p1/api/contents/upload.txt", content=chunks())  # type: ignore[arg-type]
    assert put.status_code in (200, 201), put.text
    assert (jupyter.root_dir / "upload.txt").read_text() == text


def _through_proxy(upstream: Upstream, path: str, headers: dict[str, str]) -> httpx.Response:
    """One request through a NotebookProxy called in-process (the upstream is still a real server)."""

    async def resolve(conn: HTTPConnection) -> Upstream | Response:
        return upstream

    async def run() -> httpx.Response:
        proxy = NotebookProxy(resolve)
        try:
            transport = httpx.ASGITransport(app=proxy)
            async with httpx.AsyncClient(transport=transport, base_url="http://atoll.test") as c:
                return await c.get(path, headers=headers)
        finally:
            await proxy.aclose()

    return asyncio.run(run())


def test_upstream_down_is_502() -> None:
    port = free_port()  # nothing listens there
    resp = _through_proxy(Upstream(f"http://127.0.0.1:{port}/nb/p9", {}), "/api/status", {})
    assert resp.status_code == 502
    assert "unreachable" in resp.text


def test_only_resolved_headers_reach_the_upstream() -> None:
    async def echo(request: Request) -> Response:
        resp = JSONResponse(
            {"raw_path": request.scope["raw_path"].decode(), "query": request.url.query, **request.headers}
        )
        resp.set_cookie("upstream_secret", "s3cret")
        return resp

    app = Starlette(routes=[Route("/{rest:path}", echo)])
    with serve(app) as url:
        resp = _through_proxy(
            Upstream(url + "/nb/p1", {"Authorization": "token T"}),
            "/api/contents/a%2Fb%20c.txt?x=1",
            {
                "Cookie": "atoll_session=abc",
                "Authorization": "Bearer user",
                "Origin": "http://evil",
                "X-Ok": "1",
            },
        )
    assert resp.status_code == 200
    seen = resp.json()
    assert seen["authorization"] == "token T"
    assert "cookie" not in seen and "origin" not in seen
    assert seen["x-ok"] == "1"
    assert seen["host"] == url.removeprefix("http://")
    assert seen["query"] == "x=1"
    assert seen["raw_path"] == "/nb/p1/api/contents/a%2Fb%20c.txt"  # encoding kept as the client sent it
    assert "set-cookie" not in resp.headers
