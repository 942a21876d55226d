"""The Docker images section of a project's Settings tab (spec §4.3) on a server without a Docker
daemon: it loads into the tab, says why no image can be built instead of offering the form, works
without JavaScript as a page of its own, and a create posted anyway is refused with that reason.
(Building, activating and deleting on a real daemon: tests/images, through the API.)"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from atoll.domain import auth
from tests.browser.conftest import sign_in
from tests.notebooks.conftest import new_project
from tests.support.server import ADMIN_PASSWORD, RunningServer, start_server

pytestmark = pytest.mark.browser
NO_DOCKER = "this installation has no Docker daemon (ATOLL_DOCKER_HOST)"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    # No daemon, whatever the environment running the tests names.
    srv = start_server(tmp_path_factory.mktemp("ui-images") / "data", extra_env={"ATOLL_DOCKER_HOST": ""})
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def project_id(server: RunningServer) -> str:
    return str(new_project(server, "ui-images")["id"])


def test_the_settings_tab_shows_the_images_section_without_a_docker_daemon(
    page: Page, project_id: str
) -> None:
    sign_in(page, "admin", ADMIN_PASSWORD)
    page.goto(f"/projects/{project_id}")
    page.get_by_role("tab", name="Settings").click()
    section = page.get_by_test_id("project-images")
    expect(section.get_by_role("heading", name="Docker images")).to_be_visible()
    expect(section.get_by_test_id("images-no-docker")).to_contain_text(NO_DOCKER)
    expect(section.get_by_test_id("no-images")).to_be_visible()
    expect(section.get_by_test_id("images-active")).to_contain_text("the project's environment")
    expect(section.get_by_test_id("create-image-form")).to_have_count(0)
    # The rest of the tab is still there, the environments' form included.
    expect(page.get_by_test_id("create-environment")).to_be_visible()


def test_without_javascript_the_section_is_a_page_of_its_own(browser: Browser, server: RunningServer) -> None:
    pid = str(new_project(server, "ui-images-nojs")["id"])
    ctx = browser.new_context(base_url=server.url, java_script_enabled=False)
    try:
        page = ctx.new_page()
        sign_in(page, "admin", ADMIN_PASSWORD)
        page.goto(f"/projects/{pid}?tab=settings")
        page.get_by_test_id("project-images").get_by_role("link", name="The project's Docker images").click()
        expect(page).to_have_url(re.compile(rf"/projects/{pid}/images$"))
        expect(page.get_by_test_id("images-no-docker")).to_contain_text(NO_DOCKER)
        page.get_by_role("link", name="its settings").click()
        expect(page).to_have_url(re.compile(rf"/projects/{pid}\?tab=settings$"))
    finally:
        ctx.close()


def test_a_create_posted_anyway_is_refused_with_the_reason(server: RunningServer, project_id: str) -> None:
    with httpx.Client(base_url=server.url, follow_redirects=False) as web:
        r = web.post("/api/v1/auth/sessions", json={"username": "admin", "password": ADMIN_PASSWORD})
        r.raise_for_status()
        form = {
            "name": "tools",
            "tag": "1.0",
            "dockerfile": "FROM debian\n",
            auth.CSRF_FIELD: r.json()["csrfToken"],
        }
        refused = web.post(f"/projects/{project_id}/images", data=form)
        assert refused.status_code == 409
        assert NO_DOCKER in refused.text
        # As the section's htmx form gets it: the section alone, with the reason in it.
        part = web.post(
            f"/projects/{project_id}/images", data=form, headers={"HX-Request": "true", "HX-Target": "images"}
        )
        assert part.status_code == 409
        assert part.text.lstrip().startswith('<article id="images"')
        assert NO_DOCKER in part.text
        # An image id of no project's is not found.
        gone = web.post(f"/projects/{project_id}/images/img-nope/activate", data=form)
        assert gone.status_code == 404
    with server.api() as api:
        assert api.get(f"/projects/{project_id}/images").json() == []
