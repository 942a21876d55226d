"""The project's Jobs tab and a job page show a job that ran out of balance, with the reason."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import sign_in
from tests.support.server import ADMIN_PASSWORD, RunningServer

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def stopped_job(server: RunningServer) -> Iterator[dict[str, str]]:
    with server.api() as api:
        org = api.get("/organizations").json()["items"][0]["id"]
        com = api.post("/communities", json={"organizationId": org, "name": "ui-jobs"}).json()
        prj = api.post("/projects", json={"communityId": com["id"], "name": "ui-jobs"}).json()
        api.patch(f"/projects/{prj['id']}/limits", json={"balance": 2})
        cfg = "name: drain\ncmd: echo working; sleep 600\ncloud-instance-types: [s1.1]\n"
        job = api.post(f"/projects/{prj['id']}/jobs", json={"config": cfg}).json()["job"]
        api.post(f"/jobs/{job['id']}/execute").raise_for_status()
        deadline = time.monotonic() + 60
        while api.get(f"/jobs/{job['id']}").json()["status"] != "ERROR":
            assert time.monotonic() < deadline, api.get(f"/jobs/{job['id']}").json()
            time.sleep(0.3)
        yield {"project": prj["id"], "job": job["id"]}


def test_balance_stop_shows_in_the_ui(page: Page, server: RunningServer, stopped_job: dict[str, str]) -> None:
    sign_in(page, "admin", ADMIN_PASSWORD)
    page.goto(f"/projects/{stopped_job['project']}?tab=jobs")
    table = page.get_by_test_id("jobs")
    expect(table).to_contain_text("drain")
    expect(table).to_contain_text("ERROR")
    expect(table).to_contain_text("project balance is insufficient")
    page.get_by_role("link", name="drain").click()
    expect(page.get_by_test_id("job-status")).to_have_text("ERROR")
    expect(page.get_by_test_id("job-details")).to_contain_text("project balance is insufficient")
    expect(page.get_by_test_id("log-stdout")).to_contain_text("working")


def test_job_page_is_hidden_from_users_without_a_role(
    server: RunningServer, stopped_job: dict[str, str]
) -> None:
    with server.api() as api:
        api.post(
            "/users", json={"username": "nosy", "password": "nosy-pass-123", "organizationId": "default"}
        )
    c = httpx.Client(base_url=server.url)
    r = c.post("/api/v1/auth/tokens", json={"username": "nosy", "password": "nosy-pass-123"})
    headers = {"Authorization": f"Bearer {r.json()['token']}"}
    assert c.get(f"/api/v1/jobs/{stopped_job['job']}", headers=headers).status_code == 404
    assert c.get(f"/api/v1/jobs/{stopped_job['job']}/logs", headers=headers).status_code == 404
    assert c.get(f"/api/v1/jobs/{stopped_job['job']}/follow", headers=headers).status_code == 404


def test_a_running_job_page_follows_the_job(page: Page, server: RunningServer) -> None:
    """The page listens on the API's long poll and shows a line written after it was opened."""
    with server.api() as api:
        org = api.get("/organizations").json()["items"][0]["id"]
        com = api.post("/communities", json={"organizationId": org, "name": "ui-follow"}).json()
        prj = api.post("/projects", json={"communityId": com["id"], "name": "ui-follow"}).json()
        cfg = "name: talk\ncmd: bash -c 'echo one; sleep 3; echo two'\ncloud-instance-types: [s1.1]\n"
        job = api.post(f"/projects/{prj['id']}/jobs", json={"config": cfg}).json()["job"]
        api.post(f"/jobs/{job['id']}/execute").raise_for_status()
        deadline = time.monotonic() + 60
        while api.get(f"/jobs/{job['id']}").json()["status"] != "EXECUTING":
            assert time.monotonic() < deadline, api.get(f"/jobs/{job['id']}").json()
            time.sleep(0.1)
    sign_in(page, "admin", ADMIN_PASSWORD)
    with page.expect_request(lambda r: f"/api/v1/jobs/{job['id']}/events" in r.url):
        page.goto(f"/jobs/{job['id']}")
    expect(page.get_by_test_id("log-stdout")).to_contain_text("two", timeout=60_000)
    expect(page.get_by_test_id("job-status")).to_have_text("SUCCESS", timeout=60_000)
