"""The audit log on a real server: each action of a working day is exactly one record (sign-ins
that work and that fail, tokens made and revoked, a role granted, a secret stored and read by a
notebook's start, JupyterLab opened), an organization admin lists and exports them, a member may
not, and no secret value, password or token is in any record."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import httpx

from tests.notebooks.conftest import new_project, open_and_wait, stop_and_wait
from tests.support.server import RunningServer

VALUE = "sk-live-7f3a9c1e-never-in-a-log"
PASSWORD = "olga-lantern-tidal-42"


def _records(api: httpx.Client, org: str, **filters: str) -> list[dict[str, Any]]:
    r = api.get(f"/organizations/{org}/audit-records", params={"pageSize": 1000, **filters})
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def test_every_action_is_one_record_and_no_secret_reaches_the_log(atoll: RunningServer) -> None:
    prj = new_project(atoll, "audited")
    pid = prj["id"]
    with atoll.api() as admin:
        org = admin.get("/organizations").json()["items"][0]["id"]
        assert (
            admin.post(
                "/users", json={"username": "olga", "password": PASSWORD, "organizationId": org}
            ).status_code
            == 201
        )
        assert (
            admin.post(f"/projects/{pid}/secrets", json={"name": "API_KEY", "value": VALUE}).status_code
            == 201
        )
        grant = {"subjectType": "user", "subject": "olga", "role": "developer"}
        assert admin.post(f"/projects/{pid}/access-bindings", json=grant).status_code == 201
    anon = httpx.Client(base_url=atoll.url + "/api/v1", timeout=30)
    wrong = anon.post(
        "/auth/tokens", json={"username": "olga", "password": "not-her-password-1", "name": "x"}
    )
    assert wrong.status_code == 401
    login = anon.post("/auth/tokens", json={"username": "olga", "password": PASSWORD, "name": "laptop"})
    assert login.status_code == 201
    olga_token = login.json()["token"]
    with atoll.api(olga_token) as olga:
        made = olga.post("/tokens", json={"name": "ci"}).json()
        assert olga.delete(f"/tokens/{made['id']}").status_code == 200
        # A member who is not the organization's admin may not read its log.
        assert olga.get(f"/organizations/{org}/audit-records").status_code == 403
        assert olga.get(f"/organizations/{org}/audit-records:export").status_code == 403
    open_and_wait(atoll, pid, olga_token)  # the notebook's start reads the project's secrets
    lab = httpx.get(
        f"{atoll.url}/nb/{pid}/lab",
        headers={
            "Authorization": f"Bearer {olga_token}",
            "Accept": "text/html",
            "Sec-Fetch-Mode": "navigate",
        },
        timeout=30,
    )
    assert lab.status_code == 200, lab.text[:300]
    stop_and_wait(atoll, pid)

    with atoll.api() as admin:
        records = _records(admin, org)
        mine = [r for r in records if r["actor"] == "olga"]
        counts = Counter((r["action"], r["result"]) for r in mine)
        assert counts[("sign_in_for_token", "denied")] == 1
        assert counts[("sign_in_for_token", "success")] == 1
        assert counts[("create_token", "success")] == 1
        assert counts[("revoke_token", "success")] == 1
        assert counts[("list_audit_records", "denied")] == 0  # reads are not recorded
        assert counts[("open_notebook", "success")] == 1
        assert counts[("open_jupyterlab", "success")] == 1
        assert counts[("secret_read", "success")] == 1
        by_admin = Counter(r["action"] for r in records if r["actor"] == "admin")
        assert by_admin["create_user"] == by_admin["create_secret"] == 1
        assert by_admin["set_project_access_binding"] == 1, by_admin
        grant_record = next(r for r in records if r["action"] == "set_project_access_binding")
        assert (
            grant_record["detail"] == "user olga given role developer" and grant_record["resourceId"] == pid
        )
        read = next(r for r in mine if r["action"] == "secret_read")
        assert read["via"] == "workload" and read["resourceId"] == pid and "API_KEY" in read["detail"]
        lab_open = next(r for r in mine if r["action"] == "open_jupyterlab")
        assert lab_open["resourceType"] == "project" and lab_open["resourceId"] == pid
        # The export holds the same records, oldest first, one JSON object a line.
        r = admin.get(f"/organizations/{org}/audit-records:export")
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/jsonl")
        exported = [json.loads(line) for line in r.text.splitlines()]
        assert [x["id"] for x in exported] == [x["id"] for x in reversed(records)]
        everything = r.text + json.dumps(admin.get("/audit-records", params={"pageSize": 1000}).json())
    for leak in (VALUE, PASSWORD, olga_token, made["token"], atoll.admin_token, "not-her-password-1"):
        assert leak not in everything
