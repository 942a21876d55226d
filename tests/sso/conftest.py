"""Atoll signed into through a real OpenID provider (canaille, on loopback): the provider, its
client for Atoll, and a server configured for it with ATOLL_SSO_PROVIDERS."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.oidc_provider import Provider, register_redirect, sso_env
from tests.support.server import RunningServer, start_server

IDP_PASSWORD = "correct-horse-battery-9"


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    p = Provider()
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture(scope="module")
def idp_client(provider: Provider) -> Any:
    return provider.add_client([])


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, provider: Provider, idp_client: Any
) -> Iterator[RunningServer]:
    env = sso_env(provider, idp_client, adminGroups=["Atoll Admins"])
    srv = start_server(tmp_path_factory.mktemp("atoll-sso"), extra_env=env)
    register_redirect(provider, idp_client, srv.url)
    try:
        yield srv
    finally:
        srv.stop()


@dataclass
class Acme:
    org: str
    community: str
    project: str
    group: str


@pytest.fixture(scope="module")
def acme(server: RunningServer) -> Acme:
    """The organization SSO users land in, a project there, and the group "ml-team" that the
    project's Developer role is granted to (before anyone of the group ever signed in)."""
    with server.api() as api:
        org = api.get("/organizations/acme").json()
        com = api.post("/communities", json={"organizationId": org["id"], "name": "research"}).json()
        prj = api.post("/projects", json={"communityId": com["id"], "name": "vision"}).json()
        grp = api.post("/groups", json={"organizationId": org["id"], "name": "ml-team"}).json()
        r = api.post(
            f"/projects/{prj['id']}/access-bindings",
            json={"subjectType": "group", "subject": "ml-team", "role": "developer"},
        )
        assert r.status_code == 201, r.text
    return Acme(org=org["id"], community=com["id"], project=prj["id"], group=grp["id"])


def audit_records(server: RunningServer, org: str, **filters: str) -> list[dict[str, Any]]:
    with server.api() as api:
        r = api.get(f"/organizations/{org}/audit-records", params={"pageSize": 1000, **filters})
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        return items
