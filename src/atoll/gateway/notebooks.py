"""The gateway in front of projects' JupyterLab servers: ``/nb/<project id>/…``.

Every request — page, API call, WebSocket — is authenticated by the caller's Atoll session (or
API token, also sent the way Jupyter clients send theirs: ``Authorization: token …`` or
``?token=…``, as VS Code does with an external IDE link) and authorized by the access module:
the IDE needs project Developer or above (spec §2), the same check as opening the server. A
caller who cannot see the project gets 404, one who can see but not use it 403. Jupyter's token
is added here, upstream; the browser never gets it.

Jupyter skips its own XSRF check for token-authenticated requests, so cross-site request
forgery is stopped here: a cookie-authenticated write or WebSocket must come from Atoll's own
origin. Users' requests that show a person at work (a write, a page opened, a message on a
WebSocket) are noted on the activity board for idle release; a background tab's polling is not.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import Receive, Scope, Send

from atoll.domain import access, audit, auth, tenancy, workloads
from atoll.domain import notebooks as nbs
from atoll.domain.access import Action
from atoll.domain.secrets import SecretBox
from atoll.errors import DomainError
from atoll.gateway.proxy import NotebookProxy, Upstream
from atoll.notebooks.activity import ActivityBoard
from atoll.settings import Settings
from atoll.states import NotebookState
from atoll.store.db import Database

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class NotebookGateway:
    """ASGI app for ``/nb/{project_id}``: authorize, find the project's server, proxy to it."""

    def __init__(self, db: Database, box: SecretBox, activity: ActivityBoard, settings: Settings) -> None:
        self.db = db
        self.box = box
        self.activity = activity
        self.public_origin = _origin_of(settings.public_url) if settings.public_url else ""
        self.proxy = NotebookProxy(self.resolve)
        self._tokens: dict[str, str] = {}  # server id → Jupyter token (opened once, not per request)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.proxy(scope, receive, send)

    async def aclose(self) -> None:
        await self.proxy.aclose()

    async def resolve(self, conn: HTTPConnection) -> Upstream | Response:
        return await run_in_threadpool(self._resolve, conn)

    def _same_origin(self, conn: HTTPConnection) -> bool:
        origin = (conn.headers.get("origin") or "").lower()
        if not origin:
            return False
        scheme = {"ws": "http", "wss": "https"}.get(conn.url.scheme, conn.url.scheme)
        own = {f"{scheme}://{conn.headers.get('host', '')}".lower()}
        if self.public_origin:
            own.add(self.public_origin)
        return origin in own

    def _resolve(self, conn: HTTPConnection) -> Upstream | Response:
        project_id = str(conn.path_params.get("project_id", ""))
        websocket = conn.scope["type"] == "websocket"
        method = "GET" if websocket else conn.scope["method"]
        navigation = (
            not websocket
            and method == "GET"
            and (
                conn.headers.get("sec-fetch-mode") == "navigate"
                or "text/html" in conn.headers.get("accept", "")
            )
        )
        with self.db.session() as s:
            try:
                principal, web_session = access.identify(
                    s,
                    conn.headers.get("authorization"),
                    conn.cookies.get(auth.SESSION_COOKIE),
                    notebook_of=project_id,
                    query_token=conn.query_params.get("token"),
                )
            except DomainError as e:
                return PlainTextResponse(e.detail, status_code=e.status)
            if principal is None:
                if navigation:
                    return RedirectResponse(f"/login?next={quote(conn.url.path)}", status_code=303)
                return PlainTextResponse("sign in to Atoll first", status_code=401)
            if web_session is not None and (websocket or method not in SAFE_METHODS):
                if not self._same_origin(conn):
                    return PlainTextResponse(
                        "cross-origin request refused: notebook writes must come from Atoll's own pages",
                        status_code=403,
                    )
            try:
                project = tenancy.get_project(s, principal, project_id, Action.PROJECT_USE)
            except DomainError as e:
                return PlainTextResponse(e.detail, status_code=e.status)
            server = nbs.live_server(s, project.id)
            if server is None or server.state != NotebookState.READY or server.port is None:
                if navigation:
                    return RedirectResponse(f"/projects/{project.id}/notebook", status_code=303)
                state = server.state.lower() if server is not None else "not running"
                return PlainTextResponse(
                    f"the project's notebook server is {state}: open it first "
                    f"(atoll notebook open -p {project.id})",
                    status_code=503,
                )
            token = self._tokens.get(server.id)
            if token is None:
                token = self._tokens[server.id] = self.box.open(server.token)
            port, pid = server.port, project.id
            host = workloads.host_of(s, server.workload_id)
        if method not in SAFE_METHODS:
            self.activity.touch(pid, f"{method} request")
        elif navigation:
            self.activity.touch(pid, "page opened")
            if conn.url.path.split("/")[3:4] == ["lab"]:  # /nb/<project>/lab…
                audit.note_action("open_jupyterlab", record=True)  # JupyterLab itself, not its assets
        return Upstream(
            base_url=f"http://{host}:{port}{nbs.base_path(pid).rstrip('/')}",
            headers={"Authorization": f"token {token}"},
            # An external IDE's token in the URL is Atoll's, not Jupyter's: it goes no further
            # (nor into Jupyter's request log).
            drop_query=("token",),
            on_client_message=(lambda: self.activity.touch(pid, "websocket message")) if websocket else None,
        )
