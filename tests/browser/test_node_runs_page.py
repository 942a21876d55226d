"""The node page's log panel reads an instance's earlier runs: a node that crashed once offers its
previous run, labelled with why it ended, and shows what that run printed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import sign_in
from tests.deploy.conftest import FAST
from tests.deploy.test_instance_runs import deploy_crash_once
from tests.notebooks.conftest import new_project
from tests.support.server import ADMIN_PASSWORD, RunningServer, start_server
from tests.support.tenants import stop_workloads

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start_server(tmp_path_factory.mktemp("ui-runs") / "data", extra_env=FAST)
    try:
        yield srv
    finally:
        srv.stop()
        stop_workloads(srv.data_dir / "runtime")  # nodes' instances outlive `atoll up` by design


def test_log_panel_shows_the_previous_run(page: Page, server: RunningServer) -> None:
    pid = new_project(server, "ui-runs")["id"]
    n = deploy_crash_once(server, pid)

    sign_in(page, "admin", ADMIN_PASSWORD)
    page.goto(f"/projects/{pid}/nodes/{n['id']}")
    page.get_by_role("tab", name="Logs").click()
    runs = page.get_by_test_id("log-run")
    expect(runs.locator("option")).to_have_count(2)
    expect(runs.locator("option").nth(0)).to_have_text("latest · running")
    expect(runs.locator("option").nth(1)).to_contain_text("previous · exited with code 3 · ended")
    log = page.get_by_test_id("node-log")
    expect(log).to_contain_text("second run: serving")

    runs.select_option("1")
    expect(log).to_have_text("first run: giving up\n")
    expect(page.locator("[data-log-state]")).to_contain_text("previous · exited with code 3")
    page.get_by_test_id("log-stream").select_option("system")
    expect(log).to_contain_text("exited with code 3")

    runs.select_option("0")
    page.get_by_test_id("log-stream").select_option("stdout")
    expect(log).to_contain_text("second run: serving")
    expect(log).not_to_contain_text("first run")
