"""Issue 4's browser acceptance: sign in, open JupyterLab from the project page, run a cell
through Atoll's gateway and see its output; the Notebook tab shows the server's state."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from atoll.envs.builtins import DEFAULT
from tests.browser.conftest import sign_in
from tests.notebooks.conftest import boot, new_project, stop_all
from tests.support.server import ADMIN_PASSWORD, RunningServer

pytestmark = pytest.mark.browser
NUMPY = DEFAULT.version_of("numpy")

# JupyterLab's page loads its extensions first: seconds on a busy 2-core machine.
LAB_WAIT_MS = 60_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    # A 2-vCPU pool: with the notebook's s1.1 running, s1.2 fits the machine but not right now.
    running = boot(Path(tmp_path_factory.mktemp("nb-browser")), ATOLL_POOL_CPUS="2")
    try:
        yield running
    finally:
        try:
            stop_all(running)
        finally:
            running.stop()


def test_open_jupyterlab_and_run_a_cell(page: Page, server: RunningServer) -> None:
    project = new_project(server, "ui-notebook")
    sign_in(page, "admin", ADMIN_PASSWORD)
    page.goto(f"/projects/{project['id']}")
    page.get_by_role("tab", name="Notebook").click()
    expect(page.get_by_test_id("nb-state")).to_have_text("Not started")
    # The picker offers the catalogue with availability; the project's default is chosen.
    picker = page.get_by_test_id("nb-configuration")
    expect(picker).to_have_value("s1.1")
    expect(picker.locator("option[value='s1.1']")).to_contain_text("available")
    # Beside the configuration, the environment it will run in (issue 17, item 7).
    expect(page.get_by_test_id("nb-environment")).to_contain_text("Environment: datascience")
    page.get_by_test_id("open-notebook").click()
    expect(page.get_by_test_id("nb-state")).to_have_text("READY", timeout=120_000)
    expect(page.get_by_test_id("nb-timeline")).to_contain_text("preparing")
    expect(page.get_by_test_id("nb-idle")).to_contain_text(re.compile(r"in 2 h 59 min|in 3 h 00 min"))
    # The picker tells a configuration that would wait from one that starts now (issue 17, item 8).
    page.reload()
    expect(picker.locator("option[value='s1.2']")).to_contain_text(
        "busy now: 1 of 2 vCPU free, it would queue"
    )

    with page.context.expect_page() as lab_page:
        page.get_by_test_id("open-lab").click()
    lab = lab_page.value
    lab.set_default_timeout(LAB_WAIT_MS)  # actions; expect() takes its own timeout (5 s by default)
    lab.wait_for_url(re.compile(rf"/nb/{project['id']}/lab"))
    # The launcher offers a terminal; the Git extension has its panel (issue 17, item 4).
    expect(lab.locator(".jp-LauncherCard", has_text="Terminal").first).to_be_visible(timeout=LAB_WAIT_MS)
    expect(lab.locator("#jp-git-sessions")).to_have_count(1, timeout=LAB_WAIT_MS)
    # A new notebook from the launcher, one cell, run with Shift+Enter.
    lab.locator(".jp-LauncherCard[data-category='Notebook']").first.click()
    # The kernel has started (through the gateway's WebSocket) once the indicator says idle.
    expect(lab.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_be_visible(
        timeout=LAB_WAIT_MS
    )
    expect(lab.get_by_role("button", name="Python 3 (ipykernel) | Idle")).to_be_visible(timeout=LAB_WAIT_MS)
    cell = lab.locator(".jp-Notebook .jp-Cell .cm-content").first
    cell.click()
    code = "import numpy, pandas, sklearn; print(numpy.__version__)"  # the default environment's stack
    cell.type(code)
    expect(cell).to_have_text(code, timeout=LAB_WAIT_MS)
    lab.keyboard.press("Shift+Enter")
    output = lab.locator(".jp-OutputArea-output").first
    expect(output).to_have_text(re.compile(rf"^\s*{re.escape(NUMPY)}\s*$"), timeout=60_000)
    lab.close()

    page.get_by_test_id("stop-notebook").click()
    expect(page.get_by_test_id("nb-state")).to_have_text("STOPPED", timeout=30_000)
    expect(page.get_by_test_id("nb-detail")).to_contain_text("stopped by admin")


def test_the_settings_choose_the_environment(page: Page, server: RunningServer) -> None:
    project = new_project(server, "ui-env")
    sign_in(page, "admin", ADMIN_PASSWORD)
    page.goto(f"/projects/{project['id']}?tab=settings")
    choice = page.get_by_test_id("settings-environment")
    expect(choice.locator("option[value='datascience']")).to_contain_text("built-in")
    choice.select_option("datascience")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_text("Project settings saved")).to_be_visible()
    with server.api() as api:
        assert api.get(f"/projects/{project['id']}").json()["settings"]["defaultEnvironment"] == "datascience"


def test_a_project_environment_made_in_the_settings_tab(page: Page, server: RunningServer) -> None:
    project = new_project(server, "ui-own-env")
    sign_in(page, "admin", ADMIN_PASSWORD)
    page.goto(f"/projects/{project['id']}?tab=settings")
    form = page.locator("#environments form").last
    form.get_by_label("Name").fill("Bad Name")
    form.get_by_label("Requirements").fill("cowsay==6.1")
    page.get_by_test_id("create-environment").click()
    expect(page.locator("#environments")).to_contain_text("name must be 1-63 characters")
    form = page.locator("#environments form").last
    form.get_by_label("Name").fill("cows")
    page.get_by_test_id("create-environment").click()
    expect(page.get_by_text("Environment cows queued for its build")).to_be_visible()
    row = page.locator('#environments tr[data-environment="cows"]')
    expect(row).to_contain_text("datascience")
    deadline = time.monotonic() + 180
    while row.get_by_test_id("env-status").inner_text() != "ready":
        assert time.monotonic() < deadline, row.inner_text()
        time.sleep(1)
        page.goto(f"/projects/{project['id']}?tab=settings")
    page.get_by_test_id("settings-environment").select_option("cows")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_text("Project settings saved")).to_be_visible()
    # The project's default cannot go until another is chosen: the tab says so, nothing changes.
    page.locator('#environments tr[data-environment="cows"]').get_by_role("button", name="Delete").click()
    expect(page.locator("#environments")).to_contain_text("the project's default environment")
    expect(page.locator('#environments tr[data-environment="cows"]')).to_be_visible()
