"""Issue 4's browser acceptance: sign in, open JupyterLab from the project page, run a cell
through Atoll's gateway and see its output; the Notebook tab shows the server's state."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import sign_in
from tests.notebooks.conftest import boot, new_project, stop_all
from tests.support.server import ADMIN_PASSWORD, RunningServer

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = boot(Path(tmp_path_factory.mktemp("nb-browser")))
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
    page.get_by_test_id("open-notebook").click()
    expect(page.get_by_test_id("nb-state")).to_have_text("READY", timeout=120_000)
    expect(page.get_by_test_id("nb-timeline")).to_contain_text("preparing")
    expect(page.get_by_test_id("nb-idle")).to_contain_text(re.compile(r"in 2 h 59 min|in 3 h 00 min"))

    with page.context.expect_page() as lab_page:
        page.get_by_test_id("open-lab").click()
    lab = lab_page.value
    lab.set_default_timeout(60_000)
    lab.wait_for_url(re.compile(rf"/nb/{project['id']}/lab"))
    # A new notebook from the launcher, one cell, run with Shift+Enter.
    lab.locator(".jp-LauncherCard[data-category='Notebook']").first.click()
    # The kernel has started (through the gateway's WebSocket) once the indicator says idle.
    expect(lab.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_be_visible()
    expect(lab.get_by_role("button", name="Python 3 (ipykernel) | Idle")).to_be_visible()
    cell = lab.locator(".jp-Notebook .jp-Cell .cm-content").first
    cell.click()
    cell.type("import numpy; print(numpy.__version__)")
    expect(cell).to_have_text("import numpy; print(numpy.__version__)")
    lab.keyboard.press("Shift+Enter")
    output = lab.locator(".jp-OutputArea-output").first
    expect(output).to_have_text(re.compile(r"^\s*2\.3\.5\s*$"), timeout=60_000)
    lab.close()

    page.get_by_test_id("stop-notebook").click()
    expect(page.get_by_test_id("nb-state")).to_have_text("STOPPED", timeout=30_000)
    expect(page.get_by_test_id("nb-detail")).to_contain_text("stopped by admin")
