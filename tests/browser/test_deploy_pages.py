"""The Deploy tab, a node page and an alias page, on a real server with real traffic through the
gateway: charts, instances, the Request console, curl samples, the weight editor, suspend."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import new_context, sign_in
from tests.deploy.conftest import FAST, HEALTH, create_node, gateway_ready, service_command, wait_healthy
from tests.notebooks.conftest import new_project
from tests.support.server import ADMIN_PASSWORD, RunningServer, start_server
from tests.support.tenants import stop_workloads

pytestmark = pytest.mark.browser
TRAFFIC = 300  # requests sent through the gateway over about 10 s


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start_server(tmp_path_factory.mktemp("ui-deploy") / "data", extra_env=FAST)
    try:
        yield srv
    finally:
        srv.stop()
        stop_workloads(srv.data_dir / "runtime")  # nodes' instances outlive `atoll up` by design


class Traffic(threading.Thread):
    """Sends requests to an alias through the gateway, as a client of the service would."""

    def __init__(self, server: RunningServer, alias: str) -> None:
        super().__init__(daemon=True)
        self.server, self.alias = server, alias
        self.codes: list[int] = []

    def run(self) -> None:
        headers = {"x-node-alias": self.alias, "authorization": f"Bearer {self.server.admin_token}"}
        with httpx.Client(base_url=self.server.gateway_url, headers=headers, timeout=10) as c:
            for i in range(TRAFFIC):
                self.codes.append(c.get(f"/item/{i}").status_code)
                time.sleep(10 / TRAFFIC)


@pytest.fixture(scope="module")
def deployed(server: RunningServer) -> Iterator[dict[str, Any]]:
    pid = new_project(server, "ui-deploy")["id"]
    node = create_node(
        server,
        pid,
        "svc-ui",
        command=service_command(),
        env={"VERSION": "v7"},
        healthCheck=HEALTH,
        configuration="s1.1",
    )
    spare = create_node(server, pid, "svc-b", command=service_command(), minInstances=0)
    with server.api() as api:
        body = {"name": "ui-svc", "nodes": [{"nodeId": node["id"], "weight": 100}]}
        r = api.post(f"/projects/{pid}/aliases", json=body)
        assert r.status_code == 201, r.text
        alias = r.json()
        api.post("/users", json={"username": "vic", "password": "vic-pass-123", "organizationId": "default"})
        r = api.post(f"/projects/{pid}/access-bindings", json={"subject": "vic", "role": "viewer"})
        assert r.status_code == 201, r.text
    wait_healthy(server, pid, node["id"])
    gateway_ready(server, "ui-svc", server.admin_token)
    traffic = Traffic(server, "ui-svc")
    traffic.start()
    yield {"project": pid, "node": node, "spare": spare, "alias": alias, "traffic": traffic}
    traffic.join()


def test_node_page_charts_the_gateway_traffic(page: Page, deployed: dict[str, Any]) -> None:
    sign_in(page, "admin", ADMIN_PASSWORD)
    pid = deployed["project"]
    page.goto(f"/projects/{pid}?tab=deploy")
    expect(page.get_by_test_id("nodes")).to_contain_text("svc-ui")
    expect(page.get_by_test_id("nodes")).to_contain_text("Healthy")
    expect(page.get_by_test_id("aliases")).to_contain_text("svc-ui 100%")
    page.get_by_role("link", name="svc-ui").click()

    expect(page.get_by_test_id("node-status")).to_have_text("Healthy")
    instances = page.get_by_test_id("instances")
    expect(instances.locator("tr[data-instance-status=Healthy]")).to_have_count(1)
    for chart in ("requests", "latency", "codes"):
        expect(page.get_by_test_id(f"chart-{chart}").locator("canvas")).to_have_count(1)
    summary = page.get_by_test_id("metrics-summary")
    expect(summary).to_contain_text(re.compile(r"[1-9]\d* requests? in the last 15 min"), timeout=30_000)

    # Once the traffic is over, the charts count every request the gateway answered.
    traffic = deployed["traffic"]
    traffic.join(timeout=60)
    assert traffic.codes.count(200) == TRAFFIC
    page.wait_for_function(
        "n => +document.querySelector('[data-metrics-summary]').dataset.requests >= n",
        arg=TRAFFIC,
        timeout=30_000,
    )
    codes = summary.get_attribute("data-codes") or "{}"
    assert re.search(r'"200":\s*\d{3}', codes), codes
    series = page.get_by_test_id("charts").get_attribute("data-series") or ""
    assert '"200"' in series

    # Live logs of the instance: its system stream says how it was started.
    page.get_by_role("tab", name="Logs").click()
    page.get_by_test_id("log-stream").select_option("system")
    expect(page.get_by_test_id("node-log")).not_to_be_empty(timeout=15_000)


def test_request_tab_and_curl_sample(page: Page, server: RunningServer, deployed: dict[str, Any]) -> None:
    sign_in(page, "admin", ADMIN_PASSWORD)
    node = deployed["node"]
    page.goto(f"/projects/{deployed['project']}/nodes/{node['id']}")
    page.get_by_role("tab", name="Request").click()
    page.get_by_test_id("req-method").select_option("GET")
    page.get_by_test_id("req-path").fill("/")
    page.get_by_test_id("req-execute").click()
    expect(page.get_by_test_id("req-status")).to_have_text("200")
    expect(page.get_by_test_id("req-response")).to_contain_text('"version": "v7"')
    expect(page.get_by_test_id("req-time")).to_contain_text("ms")
    curl = page.get_by_test_id("curl-sample")
    expect(curl).to_contain_text(f'-H "x-node-id: {node["id"]}"')
    expect(curl).to_contain_text('-H "Authorization: Bearer $ATOLL_TOKEN" -X GET')
    expect(curl).to_contain_text(server.gateway_url + "/")
    page.get_by_test_id("req-method").select_option("POST")
    page.get_by_test_id("req-body").fill('{"a": 2, "b": 3}')
    expect(curl).to_contain_text(f"""-d '{{"a":2,"b":3}}' {server.gateway_url}/""")
    page.get_by_test_id("req-execute").click()
    expect(page.get_by_test_id("req-response")).to_contain_text('"len": 16')


def test_alias_weight_editor(page: Page, server: RunningServer, deployed: dict[str, Any]) -> None:
    sign_in(page, "admin", ADMIN_PASSWORD)
    pid, alias = deployed["project"], deployed["alias"]
    page.goto(f"/projects/{pid}/aliases/{alias['id']}")
    expect(page.get_by_test_id("curl-sample")).to_contain_text('-H "x-node-alias: ui-svc"')
    expect(page.get_by_test_id("curl-sample")).to_contain_text(server.gateway_url)
    expect(page.get_by_test_id("chart-requests").locator("canvas")).to_have_count(1)
    expect(page.get_by_test_id("metrics-summary")).to_contain_text(re.compile(r"[1-9]\d* requests?"))

    page.get_by_test_id("weight-svc-ui").fill("90")
    expect(page.get_by_test_id("weight-total")).to_have_text("90")
    page.get_by_test_id("save-weights").click()
    error = page.locator("#alias-editor .form-error")
    expect(error).to_contain_text("nodes: the weights must add up to 100 (they add up to 90)")
    expect(error).to_have_attribute("data-field", "nodes")
    expect(page.get_by_test_id("weight-svc-ui")).to_have_value("90")  # kept as the user left it

    page.get_by_test_id("add-node-select").select_option(deployed["spare"]["id"])
    page.get_by_test_id("add-node").click()
    page.get_by_test_id("weight-svc-b").fill("10")
    expect(page.get_by_test_id("weight-total")).to_have_text("100")
    page.get_by_test_id("save-weights").click()
    expect(page.locator("#alias-editor .notice")).to_contain_text("Weights saved")
    expect(page.locator("#alias-editor .form-error")).to_have_count(0)
    with server.api() as api:
        got = api.get(f"/projects/{pid}/aliases/{alias['id']}").json()
    assert [(e["nodeName"], e["weight"]) for e in got["nodes"]] == [("svc-ui", 90), ("svc-b", 10)]

    page.get_by_test_id("alias-public").check()
    expect(page.get_by_test_id("alias-access")).to_have_text("Public")
    expect(page.get_by_test_id("curl-sample")).not_to_contain_text("Authorization")


def test_viewers_read_but_get_no_controls(
    browser: Browser, server: RunningServer, deployed: dict[str, Any]
) -> None:
    ctx = new_context(browser, server)
    try:
        page = ctx.new_page()
        sign_in(page, "vic", "vic-pass-123")
        pid = deployed["project"]
        page.goto(f"/projects/{pid}/nodes/{deployed['node']['id']}")
        expect(page.get_by_test_id("node-status")).to_have_text("Healthy")
        expect(page.get_by_role("button", name="Suspend")).to_have_count(0)
        expect(page.get_by_role("button", name="Delete")).to_have_count(0)
        expect(page.get_by_test_id("req-execute")).to_have_count(0)
        expect(page.get_by_test_id("metrics-summary")).to_contain_text(re.compile(r"[1-9]\d* requests?"))
        page.goto(f"/projects/{pid}/aliases/{deployed['alias']['id']}")
        expect(page.get_by_test_id("weight-svc-ui")).to_be_disabled()
        expect(page.get_by_test_id("save-weights")).to_have_count(0)
        page.goto(f"/projects/{pid}?tab=deploy")
        expect(page.get_by_test_id("nodes")).to_contain_text("svc-ui")
        expect(page.get_by_test_id("create-node")).to_have_count(0)
    finally:
        ctx.close()


def test_forms_create_a_node_and_an_alias_and_change_the_node(
    page: Page, server: RunningServer, deployed: dict[str, Any]
) -> None:
    sign_in(page, "admin", ADMIN_PASSWORD)
    pid = deployed["project"]
    page.goto(f"/projects/{pid}?tab=deploy")
    form = page.locator("#create-node")
    form.get_by_label("Name", exact=True).fill("svc-form")
    form.get_by_test_id("create-node").click()
    expect(form.locator(".field-error")).to_contain_text("command: the program that serves HTTP on $PORT")
    form.get_by_label("Command", exact=True).fill("python3 -m http.server $PORT")
    form.get_by_label("Min instances").fill("0")  # nothing to start: the page is what is tested
    form.get_by_test_id("create-node").click()
    expect(page.get_by_role("heading", name="svc-form")).to_be_visible()
    expect(page.locator("#flash")).to_contain_text("Node svc-form created")

    page.get_by_role("tab", name="Configuration").click()
    settings = page.locator("#node-settings")
    settings.get_by_role("textbox", name="Environment").fill("PORT=1")
    settings.get_by_test_id("save-node").click()
    expect(settings.locator(".field-error")).to_contain_text("env: 'PORT' is not a name a node may set")
    settings.get_by_role("textbox", name="Environment").fill("GREETING=hi")
    settings.get_by_label("Request timeout, s").fill("0")
    settings.get_by_test_id("save-node").click()
    expect(settings.locator(".field-error")).to_contain_text("endpoint.timeoutS must be a whole number")
    settings.get_by_label("Request timeout, s").fill("900")
    settings.get_by_label("Max instances").fill("2")
    settings.get_by_label("Description", exact=True).fill("made in the browser")
    page.locator("#node-settings").get_by_test_id("save-node").click()
    expect(page.locator("#node-settings .notice")).to_contain_text("Configuration saved")
    with server.api() as api:
        got = api.get(f"/projects/{pid}/nodes/svc-form").json()
    assert (got["description"], got["maxInstances"], got["spec"]["env"]) == (
        "made in the browser",
        2,
        {"GREETING": "hi"},
    )
    assert got["spec"]["endpoint"]["timeoutS"] == 900
    assert got["spec"]["command"] == ["python3", "-m", "http.server", "$PORT"]

    page.goto(f"/projects/{pid}?tab=deploy")
    form = page.locator("#create-alias")
    form.get_by_label("Name", exact=True).fill("form-alias")
    for weight in form.locator("input[type=number]").all():
        weight.fill("")
    form.locator(f'input[name="weight.{deployed["node"]["id"]}"]').fill("60")
    form.get_by_test_id("create-alias").click()
    expect(form.locator(".field-error")).to_contain_text("they add up to 60")
    form.locator(f'input[name="weight.{deployed["node"]["id"]}"]').fill("100")
    form.get_by_test_id("create-alias").click()
    expect(page.get_by_role("heading", name="form-alias")).to_be_visible()
    expect(page.get_by_test_id("weight-svc-ui")).to_have_value("100")


def test_suspend_from_the_node_page(page: Page, deployed: dict[str, Any]) -> None:
    sign_in(page, "admin", ADMIN_PASSWORD)
    page.goto(f"/projects/{deployed['project']}/nodes/{deployed['node']['id']}")
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Suspend").click()
    expect(page.get_by_test_id("node-status")).to_have_text("Suspended", timeout=30_000)
    expect(page.get_by_role("button", name="Resume")).to_be_visible()
    expect(page.get_by_test_id("instances")).to_contain_text("No instances")


def test_models_tab_lists_saved_versions(page: Page, server: RunningServer, deployed: dict[str, Any]) -> None:
    """A model saved through the outbox (what atoll.models.save writes) shows on the Models tab."""
    import json
    import os
    import uuid

    pid = deployed["project"]
    box = server.data_dir / "projects" / pid / "model-outbox" / "ui-test"
    box.mkdir(parents=True, exist_ok=True)
    meta = {
        "name": "echo",
        "format": "noop",
        "description": "a no-op model",
        "inputs": [{"name": "input__0", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [{"name": "output__0", "datatype": "FP32", "shape": [-1, 4]}],
    }
    key = uuid.uuid4().hex
    tmp = box / f".tmp-{key}"
    tmp.mkdir()
    (tmp / "meta.json").write_text(json.dumps(meta))
    os.rename(tmp, box / key)
    deadline = time.monotonic() + 30
    while not (box / f"{key}.result.json").exists():
        assert time.monotonic() < deadline, "the model was not registered"
        time.sleep(0.2)
    sign_in(page, "admin", ADMIN_PASSWORD)
    page.goto(f"/projects/{pid}?tab=models")
    table = page.get_by_test_id("models")
    expect(table).to_contain_text("echo")
    expect(table).to_contain_text("a no-op model")
    expect(table).to_contain_text("input__0 FP32 [-1, 4]")
    page.goto(f"/projects/{pid}?tab=deploy")
    expect(page.get_by_role("link", name="Models", exact=True).first).to_be_visible()
