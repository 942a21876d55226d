"""The external IDE link (spec §4.1, issue 17 item 6): a URL and a project-scoped token that a
Jupyter client such as VS Code's "Existing Jupyter Server" uses the way it uses any Jupyter server
(``Authorization: token …`` or ``?token=…``), through Atoll's gateway. Off until the community
turns it on; the token opens that project's JupyterLab and nothing else; revoking it ends it."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
from websockets.sync.client import connect

from tests.notebooks.conftest import new_project, open_and_wait, stop_and_wait
from tests.support.server import RunningServer


def _execute(ws_url: str, code: str, headers: dict[str, str] | None = None) -> str:
    """Run ``code`` on a kernel's channels as a Jupyter client does; what it printed."""
    with connect(ws_url, additional_headers=headers or {}, open_timeout=30) as ws:
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "username": "ide",
            "session": "s",
            "version": "5.3",
        }
        content = {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
        }
        ws.send(
            json.dumps(
                {
                    "header": header,
                    "parent_header": {},
                    "metadata": {},
                    "content": content,
                    "channel": "shell",
                }
            )
        )
        out = ""
        while True:
            msg = json.loads(ws.recv(timeout=60))
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                out += msg["content"]["text"]
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return out


def test_an_external_ide_reaches_one_project_s_jupyterlab(atoll: RunningServer) -> None:
    project = new_project(atoll, "ide-link")
    other = new_project(atoll, "ide-other")
    pid = project["id"]
    with atoll.api() as api:
        off = api.post(f"/projects/{pid}/notebook/ide-link", json={})
        assert off.status_code == 403 and "externalIde" in off.json()["detail"], off.text
        r = api.patch(
            f"/communities/{project['communityId']}/restrictions", json={"features": {"externalIde": True}}
        )
        assert r.status_code == 200, r.text
        made = api.post(f"/projects/{pid}/notebook/ide-link", json={"expiresInDays": 7})
        assert made.status_code == 201, made.text
    link = made.json()
    token = link["token"]
    assert link["url"] == f"{atoll.url}/nb/{pid}/" and link["urlWithToken"] == f"{link['url']}?token={token}"
    open_and_wait(atoll, pid)
    base = link["url"].rstrip("/")
    try:
        # As VS Code's Jupyter extension talks to a server: Jupyter's header, then the URL's token.
        jupyter = {"Authorization": f"token {token}"}
        assert httpx.get(f"{base}/api/kernelspecs", headers=jupyter, timeout=30).status_code == 200
        kernel = httpx.post(
            f"{link['urlWithToken'].replace('/?', '/api/kernels?')}", json={"name": "python3"}, timeout=60
        )
        assert kernel.status_code == 201, kernel.text
        ws = base.replace("http://", "ws://") + f"/api/kernels/{kernel.json()['id']}/channels?token={token}"
        assert _execute(ws, "import getpass, sklearn; print(getpass.getuser() != '')").strip() == "True"
        # Nothing else: not the API, not another project's JupyterLab, not Atoll's pages.
        refused = httpx.get(f"{atoll.url}/api/v1/projects", headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 401 and "external IDE link" in refused.json()["detail"], refused.text
        elsewhere = httpx.get(f"{atoll.url}/nb/{other['id']}/api/status", headers=jupyter, timeout=30)
        assert elsewhere.status_code == 401, elsewhere.text
        # The URL's token is Atoll's: it is not passed on into Jupyter's request log.
        logs = "".join(p.read_text(errors="replace") for p in Path(atoll.data_dir, "logs").rglob("*.log"))
        assert token not in logs
        # Revoked: the IDE is out at once.
        with atoll.api() as api:
            assert api.delete(f"/tokens/{link['tokenId']}").status_code == 200
        gone = httpx.get(f"{base}/api/kernelspecs", headers=jupyter, timeout=30)
        assert gone.status_code == 401, gone.text
    finally:
        stop_and_wait(atoll, pid)
