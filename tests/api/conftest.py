"""In-process app over a real database (SQLite or PostgreSQL): the real ASGI app, no mocks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from atoll.app import create_app
from atoll.settings import Settings
from tests.support.server import ADMIN_PASSWORD


def make_settings(tmp: Any, database_url: str, **kw: Any) -> Settings:
    return Settings(data_dir=tmp, database_url=database_url, admin_password=ADMIN_PASSWORD, **kw)


@pytest.fixture(scope="module")
def app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    # Quotas are tested on their own; here many tests create communities in one organization, and
    # environments in one project.
    settings = make_settings(
        tmp_path_factory.mktemp("data"),
        database_url,
        quota_communities_per_org=0,
        quota_environments_per_project=0,
    )
    application = create_app(settings)
    yield application
    application.state.db.dispose()


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def admin_token(client: TestClient) -> str:
    r = client.post("/api/v1/auth/tokens", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


def admin_in_new_community(app: FastAPI, name: str) -> tuple[TestClient, str]:
    """A client signed in as the admin (no lifespan: no controllers run), and a new community's id."""
    c = TestClient(app)
    body = {"username": "admin", "password": ADMIN_PASSWORD}
    c.headers["Authorization"] = f"Bearer {c.post('/api/v1/auth/tokens', json=body).json()['token']}"
    org = c.get("/api/v1/organizations").json()["items"][0]["id"]
    return c, str(c.post("/api/v1/communities", json={"organizationId": org, "name": name}).json()["id"])


def as_token(app: FastAPI, token: str) -> TestClient:
    return TestClient(app, headers={"Authorization": f"Bearer {token}"})


@pytest.fixture(scope="module")
def admin(app: FastAPI, admin_token: str) -> TestClient:
    """A client that sends the admin's token on every request."""
    return as_token(app, admin_token)
