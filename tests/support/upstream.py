"""A small real HTTP service to stand behind the data plane: streaming, WebSocket, slow answers,
bodies, headers and cookies echoed back. Run as ``python -m uvicorn tests.support.upstream:app``.

/sse?name=N streams "data: first" at once, then waits until /release?name=N is called before
sending "data: second": a client that sees "first" before calling /release proves the event was
not held back anywhere on the way.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

_released: dict[str, asyncio.Event] = {}


def _event(name: str) -> asyncio.Event:
    return _released.setdefault(name, asyncio.Event())


async def sse(request: Request) -> StreamingResponse:
    name = request.query_params.get("name", "")

    async def events() -> AsyncIterator[bytes]:
        yield b"data: first\n\n"
        await asyncio.wait_for(_event(name).wait(), timeout=30)
        yield b"data: second\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


async def release(request: Request) -> Response:
    _event(request.query_params.get("name", "")).set()
    return PlainTextResponse("released")


async def slow(request: Request) -> Response:
    await asyncio.sleep(float(request.query_params.get("s", "1")))
    return PlainTextResponse("slow done")


async def cookie(request: Request) -> Response:
    r = PlainTextResponse("cookies set")
    r.set_cookie("atoll_session", "planted")
    r.set_cookie("tenant", "kept")
    return r


async def status(request: Request) -> Response:
    return PlainTextResponse("as asked", status_code=int(request.query_params.get("code", "200")))


async def echo(request: Request) -> Response:
    body = await request.body()
    return JSONResponse(
        {
            "path": request.url.path,
            "query": request.url.query,
            "bytes": len(body),
            "headers": {k: v for k, v in request.headers.items() if k in ("cookie", "authorization")},
            "http": request.scope.get("http_version"),
        }
    )


async def ws(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        msg = await websocket.receive_text()
        await websocket.send_text("echo:" + msg)


app = Starlette(
    routes=[
        Route("/sse", sse),
        Route("/release", release),
        Route("/slow", slow),
        Route("/cookie", cookie),
        Route("/status", status),
        WebSocketRoute("/ws", ws),
        Route("/{rest:path}", echo, methods=["GET", "POST", "PUT"]),
    ]
)
