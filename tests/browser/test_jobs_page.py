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


def run_job(
    server: RunningServer, name: str, cmd: str, until: str, balance: int | None = None
) -> dict[str, str]:
    """A job in a project of its own, executed and seen in the status ``until``."""
    with server.api() as api:
        org = api.get("/organizations").json()["items"][0]["id"]
        com = api.post("/communities", json={"organizationId": org, "name": f"ui-{name}"}).json()
        prj = api.post("/projects", json={"communityId": com["id"], "name": f"ui-{name}"}).json()
        if balance is not None:
            api.patch(f"/projects/{prj['id']}/limits", json={"balance": balance})
        cfg = f"name: {name}\ncmd: {cmd}\ncloud-instance-types: [s1.1]\n"
        job = api.post(f"/projects/{prj['id']}/jobs", json={"config": cfg}).json()["job"]
        api.post(f"/jobs/{job['id']}/execute").raise_for_status()
        deadline = time.monotonic() + 60
        while api.get(f"/jobs/{job['id']}").json()["status"] != until:
            assert time.monotonic() < deadline, api.get(f"/jobs/{job['id']}").json()
            time.sleep(0.1)
    return {"project": prj["id"], "job": job["id"]}


@pytest.fixture(scope="module")
def stopped_job(server: RunningServer) -> Iterator[dict[str, str]]:
    yield run_job(server, "drain", "echo working; sleep 600", "ERROR", balance=2)


def test_balance_stop_shows_in_the_ui(page: Page, server: RunningServer, stopped_job: dict[str, str]) -> None:
    sign_in(page, "admin", ADMIN_PASSWORD)
    page.goto(f"/projects/{stopped_job['project']}?tab=jobs")
    table = page.get_by_test_id("jobs")
    expect(table).to_contain_text("drain")
    expect(table).to_contain_text("ERROR")
    expect(table).to_contain_text("project balance is insufficient")
    table.get_by_role("link", name="drain").click()
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
    # Signed in first, and the job's second line well after its first: the page must open while
    # the job still runs (a busy machine took more than the 3 s there were before).
    sign_in(page, "admin", ADMIN_PASSWORD)
    job = {"id": run_job(server, "talk", "bash -c 'echo one; sleep 8; echo two'", "EXECUTING")["job"]}
    with page.expect_request(lambda r: f"/api/v1/jobs/{job['id']}/events" in r.url):
        page.goto(f"/jobs/{job['id']}")
    expect(page.get_by_test_id("log-stdout")).to_contain_text("two", timeout=60_000)
    expect(page.get_by_test_id("job-status")).to_have_text("SUCCESS", timeout=60_000)
