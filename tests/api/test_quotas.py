"""Quotas (spec §7.3) refuse the create with a clear message and create nothing."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from atoll.app import create_app
from tests.api.conftest import admin_in_new_community, make_settings
from tests.support.server import ADMIN_PASSWORD


def test_quotas(fresh_database_url: str, tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, fresh_database_url, quota_communities_per_org=2, quota_projects_per_community=1
    )
    app = create_app(settings)
    try:
        c = TestClient(app)
        tok = c.post("/api/v1/auth/tokens", json={"username": "admin", "password": ADMIN_PASSWORD}).json()[
            "token"
        ]
        c.headers["Authorization"] = f"Bearer {tok}"
        org = c.get("/api/v1/organizations").json()["items"][0]["id"]
        ids = [
            c.post("/api/v1/communities", json={"organizationId": org, "name": f"c{i}"}).json().get("id")
            for i in range(2)
        ]
        r = c.post("/api/v1/communities", json={"organizationId": org, "name": "c2"})
        assert r.status_code == 409 and "quota of 2 communities" in r.json()["detail"]
        assert len(c.get("/api/v1/communities").json()["items"]) == 2
        assert c.post("/api/v1/projects", json={"communityId": ids[0], "name": "p0"}).status_code == 201
        r = c.post("/api/v1/projects", json={"communityId": ids[0], "name": "p1"})
        assert r.status_code == 409 and "quota of 1 projects" in r.json()["detail"]
    finally:
        app.state.db.dispose()


def test_a_project_has_a_quota_of_environments(fresh_database_url: str, tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, fresh_database_url, quota_environments_per_project=1))
    try:
        c, com = admin_in_new_community(app, "q")
        pid = c.post("/api/v1/projects", json={"communityId": com, "name": "q"}).json()["id"]
        made = c.post(
            f"/api/v1/projects/{pid}/environments", json={"name": "one", "requirements": ["six==1.16.0"]}
        )
        assert made.status_code == 201, made.text
        r = c.post(
            f"/api/v1/projects/{pid}/environments", json={"name": "two", "requirements": ["six==1.16.0"]}
        )
        assert r.status_code == 409 and "quota" in r.json()["detail"], r.text
        names = [e["name"] for e in c.get("/api/v1/environments", params={"projectId": pid}).json()]
        assert "one" in names and "two" not in names
    finally:
        app.state.db.dispose()
