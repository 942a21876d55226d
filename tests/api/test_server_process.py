"""The real `atoll up` process on SQLite and PostgreSQL: first start, restart, data kept."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import httpx

from tests.support.server import start_server


def test_first_start_prints_how_to_sign_in(db_backend: str, fresh_database_url: str, tmp_path: Path) -> None:
    url = "" if db_backend == "sqlite" else fresh_database_url
    srv = start_server(tmp_path / "data", url, extra_env={"ATOLL_ADMIN_PASSWORD": ""}, login=False)
    try:
        health = httpx.get(srv.url + "/healthz").json()
        assert health["database"] == db_backend
        log = srv.log()
        assert f"Atoll is up at {srv.url}" in log
        m = re.search(r"sign in as 'admin' with password (\S+)", log)
        assert m, log
        password = m.group(1)
        saved = srv.data_dir / "initial-admin-password"
        assert saved.read_text().strip() == password
        assert stat.S_IMODE(saved.stat().st_mode) == 0o600
        assert stat.S_IMODE(srv.data_dir.stat().st_mode) == 0o700
        r = httpx.post(srv.url + "/api/v1/auth/tokens", json={"username": "admin", "password": password})
        assert r.status_code == 201
        token = r.json()["token"]
        api = httpx.Client(base_url=srv.url + "/api/v1", headers={"Authorization": f"Bearer {token}"})
        org = api.get("/organizations").json()["items"][0]
        assert org["name"] == "default"
        com = api.post("/communities", json={"organizationId": org["id"], "name": "kept"})
        assert com.status_code == 201
    finally:
        srv.stop()
    # Restart on the same data: migrations are a no-op, nothing is re-created, data is there.
    srv = start_server(tmp_path / "data", url, extra_env={"ATOLL_ADMIN_PASSWORD": ""}, login=False)
    try:
        assert "first admin" not in srv.log()
        api = httpx.Client(base_url=srv.url + "/api/v1", headers={"Authorization": f"Bearer {token}"})
        names = [c["name"] for c in api.get("/communities").json()["items"]]
        assert names == ["kept"]
        assert len(api.get("/organizations").json()["items"]) == 1
    finally:
        srv.stop()
