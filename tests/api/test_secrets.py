"""Project secrets: encrypted at rest, never in API responses, name rules of spec §4.5."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from atoll.domain.secrets import SecretBox
from atoll.store.tables import Project, Secret

V = "/api/v1"
VALUE = "s3cr3t-value-never-shown"


@pytest.fixture(scope="module")
def project(admin: TestClient) -> dict[str, Any]:
    org = admin.get(f"{V}/organizations").json()["items"][0]["id"]
    com = admin.post(f"{V}/communities", json={"organizationId": org, "name": "sec-com"}).json()
    return dict(admin.post(f"{V}/projects", json={"communityId": com["id"], "name": "sec-prj"}).json())


def test_secret_lifecycle(admin: TestClient, app: FastAPI, project: dict[str, Any]) -> None:
    url = f"{V}/projects/{project['id']}/secrets"
    r = admin.post(url, json={"name": "DB_PASSWORD", "value": VALUE})
    assert r.status_code == 201, r.text
    assert r.json()["value"] == "***" and VALUE not in r.text
    for resp in (admin.get(url), admin.get(f"{url}/DB_PASSWORD"), admin.get(f"{url}/{r.json()['id']}")):
        assert resp.status_code == 200 and VALUE not in resp.text
    # encrypted at rest: the stored bytes do not contain the value
    with app.state.db.session() as s:
        row = s.query(Secret).filter_by(name="DB_PASSWORD").one()
        assert VALUE.encode() not in row.ciphertext
        box: SecretBox = app.state.secret_box
        assert box.open(row.ciphertext) == VALUE
        from atoll.domain.secrets import project_env

        proj = s.get(Project, project["id"])
        assert proj is not None
        assert project_env(s, box, proj) == {"DB_PASSWORD": VALUE}
    r = admin.patch(f"{url}/DB_PASSWORD", json={"name": "db-password", "value": "other"})
    assert r.status_code == 200 and r.json()["name"] == "db-password"
    assert admin.post(url, json={"name": "db-password", "value": "x"}).status_code == 409
    assert admin.delete(f"{url}/db-password").status_code == 204
    assert admin.get(f"{url}/db-password").status_code == 404


@pytest.mark.parametrize(
    ("name", "value", "field"),
    [
        ("a", "v", "name"),
        ("1abc", "v", "name"),
        ("abc-", "v", "name"),
        ("abc_", "v", "name"),
        ("ab cd", "v", "name"),
        ("x" * 64, "v", "name"),
        ("PATH", "v", "name"),
        ("ok-name", "", "value"),
    ],
)
def test_secret_validation(
    admin: TestClient, project: dict[str, Any], name: str, value: str, field: str
) -> None:
    url = f"{V}/projects/{project['id']}/secrets"
    before = admin.get(url).json()
    r = admin.post(url, json={"name": name, "value": value})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == field
    assert admin.get(url).json() == before


def test_other_installation_key_cannot_read() -> None:
    sealed = SecretBox(b"key-one").seal(VALUE)
    assert SecretBox(b"key-one").open(sealed) == VALUE
    with pytest.raises(Exception, match="another installation key"):
        SecretBox(b"key-two").open(sealed)
