"""The web UI in a real Chromium against the real `atoll up`: sign-in, tenancy, roles, settings, CSRF."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from atoll.domain import auth
from tests.browser.conftest import new_context, sign_in
from tests.support.server import ADMIN_PASSWORD, RunningServer

pytestmark = pytest.mark.browser
USER_PASSWORD = "user-pass-1234"


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _default_org(server: RunningServer) -> str:
    with server.api() as api:
        orgs = api.get("/organizations").raise_for_status().json()["items"]
    return next(o["id"] for o in orgs if o["name"] == "default")


def _community_and_project(server: RunningServer) -> tuple[str, str]:
    """A community and a project made by the admin through the REST API."""
    with server.api() as api:
        c = api.post("/communities", json={"organizationId": _default_org(server), "name": _name("com")})
        c.raise_for_status()
        p = api.post("/projects", json={"communityId": c.json()["id"], "name": _name("prj")})
        p.raise_for_status()
        return c.json()["id"], p.json()["id"]


def _create_user(server: RunningServer, username: str) -> None:
    with server.api() as api:
        r = api.post(
            "/users", json={"username": username, "password": USER_PASSWORD, "organizationId": "default"}
        )
        r.raise_for_status()


def test_sign_in_shows_an_error_for_a_wrong_password_then_lands_on_home(page: Page) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next=%2F$"))

    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".form-error")).to_contain_text("wrong username or password")
    expect(page.get_by_label("Username")).to_have_value("admin")

    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.get_by_role("heading", name="Welcome, admin")).to_be_visible()
    expect(page.get_by_test_id("current-user")).to_contain_text("admin")

    cookie = next(c for c in page.context.cookies() if c["name"] == auth.SESSION_COOKIE)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"


def test_create_a_community_and_a_project_through_the_ui(page: Page, server: RunningServer) -> None:
    sign_in(page, "admin", ADMIN_PASSWORD)
    community, project = _name("vision"), _name("detector")

    form = page.locator("#new-community")
    form.get_by_label("Name").fill("Not A Valid Name")
    form.get_by_role("button", name="Create community").click()
    expect(page.locator("#new-community .field-error")).to_contain_text("name must be 1-63 characters")

    form = page.locator("#new-community")
    form.get_by_label("Name").fill(community)
    form.get_by_label("Description").fill("Computer vision team")
    form.get_by_role("button", name="Create community").click()
    expect(page).to_have_url(re.compile(r"/communities/com-"))
    expect(page.get_by_role("heading", name=community)).to_be_visible()
    expect(page.locator("#flash")).to_contain_text("created")

    form = page.locator("#new-project")
    form.get_by_label("Name").fill(project)
    form.get_by_label("Description").fill("Finds things")
    form.get_by_role("button", name="Create project").click()
    expect(page).to_have_url(re.compile(r"/projects/prj-"))
    expect(page.get_by_role("heading", name=project)).to_be_visible()
    expect(page.get_by_test_id("my-role")).to_have_text("Admin")
    crumbs = page.locator("nav.crumbs")
    expect(crumbs).to_contain_text("default")
    expect(crumbs.get_by_role("link", name=community)).to_be_visible()

    project_id = page.url.rsplit("/", 1)[-1]
    with server.api() as api:
        got = api.get(f"/projects/{project_id}").raise_for_status().json()
        assert got["name"] == project and got["description"] == "Finds things"
        com = api.get(f"/communities/{got['communityId']}").raise_for_status().json()
        assert com["name"] == community

    page.goto("/")
    expect(page.locator(f'[data-project="{project}"]')).to_be_visible()
    expect(page.locator(f'[data-community="{community}"]')).to_be_visible()


def test_granting_a_role_lets_bob_see_the_project_and_others_get_404(
    page: Page, browser: Browser, server: RunningServer
) -> None:
    _, project_id = _community_and_project(server)
    bob, carol = _name("bob"), _name("carol")
    _create_user(server, bob)
    _create_user(server, carol)

    sign_in(page, "admin", ADMIN_PASSWORD)
    page.goto(f"/projects/{project_id}")
    page.get_by_role("tab", name="Members").click()  # htmx swaps the tab in place
    expect(page).to_have_url(re.compile(r"tab=members"))
    add = page.locator("#add-member")
    add.get_by_label("User or group name").fill(bob)
    add.get_by_label("Role").select_option("developer")
    add.get_by_role("button", name="Grant role").click()
    expect(page.locator(".notice")).to_contain_text(f"{bob} now has the Developer role")
    expect(page.locator(f'#bindings tr[data-subject="{bob}"]')).to_have_attribute("data-role", "developer")

    bob_ctx = new_context(browser, server)
    try:
        bob_page = bob_ctx.new_page()
        sign_in(bob_page, bob, USER_PASSWORD)
        card = bob_page.locator("a.card", has_text=re.compile(r"prj-"))
        expect(card).to_have_count(1)
        card.click()
        expect(bob_page).to_have_url(re.compile(rf"/projects/{project_id}$"))
        expect(bob_page.get_by_test_id("my-role")).to_have_text("Developer")
        # Developers see the members but get no controls to change them, and see no limits.
        bob_page.get_by_role("tab", name="Members").click()
        expect(bob_page.locator(f'#bindings tr[data-subject="{bob}"]')).to_be_visible()
        expect(bob_page.locator("#add-member")).to_have_count(0)
        bob_page.get_by_role("tab", name="Settings").click()
        expect(bob_page.locator("#settings")).to_be_visible()
        expect(bob_page.locator("#limits")).to_have_count(0)
        expect(bob_page.get_by_role("button", name="Save settings")).to_have_count(0)
    finally:
        bob_ctx.close()

    carol_ctx = new_context(browser, server)
    try:
        carol_page = carol_ctx.new_page()
        sign_in(carol_page, carol, USER_PASSWORD)
        response = carol_page.goto(f"/projects/{project_id}")
        assert response is not None and response.status == 404
        expect(carol_page.get_by_role("heading", name="Page not found")).to_be_visible()
        hidden = carol_page.locator(".error-page").inner_text().replace(project_id, "ID")
        response = carol_page.goto("/projects/prj-0000000000000000")
        assert response is not None and response.status == 404
        missing = carol_page.locator(".error-page").inner_text().replace("prj-0000000000000000", "ID")
        assert hidden == missing  # no way to tell "exists but not yours" from "does not exist"
    finally:
        carol_ctx.close()


def test_project_settings_persist_and_a_bad_value_changes_nothing(page: Page, server: RunningServer) -> None:
    _, project_id = _community_and_project(server)
    sign_in(page, "admin", ADMIN_PASSWORD)
    page.goto(f"/projects/{project_id}?tab=settings")

    settings = page.locator("#settings")
    timeout = settings.get_by_label("Release idle compute after")
    expect(timeout).to_have_value("3h")
    timeout.fill("90m")
    settings.get_by_role("button", name="Save settings").click()
    expect(page.locator(".notice")).to_contain_text("Project settings saved")
    page.reload()
    expect(page.locator("#settings").get_by_label("Release idle compute after")).to_have_value("1h30m")
    with server.api() as api:
        body = api.get(f"/projects/{project_id}").raise_for_status().json()
    assert body["settings"]["vmInactivityTimeout"] == "5400s"

    # A bad value beside a good change: the error names the field, and neither is saved.
    settings = page.locator("#settings")
    settings.get_by_label("Name").fill("renamed-project")
    settings.get_by_label("Release idle compute after").fill("soon")
    settings.get_by_role("button", name="Save settings").click()
    error = page.locator("#settings .field-error")
    expect(error).to_contain_text("settings.vmInactivityTimeout")
    expect(error).to_have_attribute("data-field", "settings.vmInactivityTimeout")
    expect(page.locator("#settings").get_by_label("Release idle compute after")).to_have_attribute(
        "aria-invalid", "true"
    )
    page.goto(f"/projects/{project_id}?tab=settings")  # not reload(): without JS that re-posts the form
    expect(page.locator("#settings").get_by_label("Release idle compute after")).to_have_value("1h30m")
    with server.api() as api:
        after = api.get(f"/projects/{project_id}").raise_for_status().json()
    assert after["settings"]["vmInactivityTimeout"] == "5400s"
    assert after["name"] == body["name"]

    # Limits: the admin sees and sets them.
    limits = page.locator("#limits")
    limits.get_by_label("Units per hour").fill("20000")
    limits.get_by_role("button", name="Save limits").click()
    expect(page.locator(".notice")).to_contain_text("Limits saved")
    with server.api() as api:
        assert api.get(f"/projects/{project_id}/limits").json()["maxUnitsPerHour"] == 20000


def test_a_post_without_the_csrf_token_is_refused(server: RunningServer) -> None:
    _, project_id = _community_and_project(server)
    with httpx.Client(base_url=server.url, follow_redirects=False) as web:
        r = web.post("/api/v1/auth/sessions", json={"username": "admin", "password": ADMIN_PASSWORD})
        r.raise_for_status()
        csrf = r.json()["csrfToken"]
        assert web.cookies.get(auth.SESSION_COOKIE)
        form = {
            "name": "csrf-victim",
            "settings.vmInactivityTimeout": "1h",
            "settings.staleExecTimeoutMode": "NO_TIMEOUT",
        }
        refused = web.post(f"/projects/{project_id}/settings", data=form)
        assert refused.status_code == 403
        assert "security token" in refused.text
        wrong = web.post(f"/projects/{project_id}/settings", data={**form, auth.CSRF_FIELD: "forged"})
        assert wrong.status_code == 403
        with server.api() as api:
            unchanged = api.get(f"/projects/{project_id}").json()
        assert unchanged["name"] != "csrf-victim"
        assert unchanged["settings"]["vmInactivityTimeout"] == "10800s"

        ok = web.post(f"/projects/{project_id}/settings", data=form, headers={auth.CSRF_HEADER: csrf})
        assert ok.status_code == 303
        ok = web.post(
            f"/projects/{project_id}/settings", data={**form, "name": "csrf-ok", auth.CSRF_FIELD: csrf}
        )
        assert ok.status_code == 303
        with server.api() as api:
            assert api.get(f"/projects/{project_id}").json()["name"] == "csrf-ok"

    # The sign-in form, posted before any session exists, needs its own double-submit token.
    with httpx.Client(base_url=server.url, follow_redirects=False) as anon:
        r = anon.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD})
        assert r.status_code == 403
        assert not anon.cookies.get(auth.SESSION_COOKIE)


def test_invite_link_creates_an_account_and_grants_the_role(
    page: Page, browser: Browser, server: RunningServer
) -> None:
    _, project_id = _community_and_project(server)
    sign_in(page, "admin", ADMIN_PASSWORD)
    page.goto(f"/projects/{project_id}?tab=members")
    invites = page.locator("#invites")
    invites.get_by_label("Role").select_option("viewer")
    invites.get_by_role("button", name="Create invite link").click()
    link = page.get_by_label("Invite link")
    expect(link).to_have_value(re.compile(r"/invite/"))
    url = link.input_value()

    guest = new_context(browser, server)
    try:
        gp = guest.new_page()
        gp.goto(url)
        expect(gp.get_by_role("heading", name="You are invited")).to_be_visible()
        expect(gp.locator("article")).to_contain_text("Viewer")
        dave = _name("dave")
        gp.get_by_label("Username").fill(dave)
        gp.get_by_label("Password", exact=True).fill("short")
        gp.get_by_label("Password again").fill("short")
        gp.get_by_role("button", name="Create account and accept").click()
        expect(gp.locator(".field-error")).to_contain_text("at least 10 characters")
        gp.get_by_label("Password", exact=True).fill(USER_PASSWORD)
        gp.get_by_label("Password again").fill(USER_PASSWORD)
        gp.get_by_role("button", name="Create account and accept").click()
        expect(gp).to_have_url(re.compile(rf"/projects/{project_id}$"))
        expect(gp.get_by_test_id("my-role")).to_have_text("Viewer")
        expect(gp.get_by_test_id("current-user")).to_contain_text(dave)
    finally:
        guest.close()


def test_configurations_page_and_api_tokens(page: Page) -> None:
    sign_in(page, "admin", ADMIN_PASSWORD)
    page.goto("/configurations")
    expect(page.locator('tr[data-config="c1.4"]')).to_be_visible()
    expect(page.get_by_test_id("gpu-note")).to_be_visible()
    expect(page.locator('tr[data-config="g2.8"]')).to_contain_text("unavailable")
    expect(page.locator("#isolation li")).to_have_count(3)  # what keeps projects apart here
    expect(page.locator('li[data-isolation="network"]')).to_be_visible()

    page.goto("/account")
    page.get_by_label("Name", exact=True).fill("laptop")
    page.get_by_role("button", name="Create token").click()
    token = page.get_by_label("New API token")
    expect(token).to_have_value(re.compile(r"^atl_"))
    expect(page.locator('tr[data-token="laptop"]')).to_contain_text("active")
    page.goto("/account")
    expect(page.get_by_label("New API token")).to_have_count(0)  # shown once only


def test_environments_page(page: Page) -> None:
    """The built-in environments, with their packages and their build state on this machine."""
    sign_in(page, "admin", ADMIN_PASSWORD)
    page.get_by_role("link", name="Environments").first.click()
    row = page.locator('tr[data-environment="datascience"]')
    expect(row).to_contain_text("Data science")
    expect(row).to_contain_text("default")
    # Built at the server's start (the tests' cache has it after the first run: then at once).
    expect(row.get_by_test_id("env-status")).to_have_text(re.compile("^(pending|building|ready)$"))
    packages = page.locator('tr[data-environment-packages="datascience"] details')
    packages.locator("summary").click()
    expect(packages).to_contain_text("scikit-learn==")
    expect(packages).to_contain_text("jupyterlab==")


def test_pages_work_with_plain_full_page_loads(browser: Browser, server: RunningServer) -> None:
    """Without JavaScript (no htmx) tabs are links and forms post/redirect/get, with a flash message."""
    _, project_id = _community_and_project(server)
    ctx = browser.new_context(base_url=server.url, java_script_enabled=False)
    try:
        page = ctx.new_page()
        sign_in(page, "admin", ADMIN_PASSWORD)
        page.goto(f"/projects/{project_id}")
        page.get_by_role("tab", name="Settings").click()
        expect(page).to_have_url(re.compile(r"\?tab=settings$"))
        page.locator("#settings").get_by_label("Release idle compute after").fill("45m")
        page.locator("#settings").get_by_role("button", name="Save settings").click()
        expect(page).to_have_url(re.compile(rf"/projects/{project_id}\?tab=settings$"))
        expect(page.locator("#flash")).to_have_text("Project settings saved")
        expect(page.locator("#settings").get_by_label("Release idle compute after")).to_have_value("45m")
        page.goto(f"/projects/{project_id}")
        expect(page.locator("#flash")).to_have_count(0)  # shown once
        expect(page.get_by_test_id("overview-timeout")).to_have_text("45m")
    finally:
        ctx.close()
