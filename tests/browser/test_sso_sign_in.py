"""A person who exists only in the company's identity provider signs in to Atoll through the real
browser, reaches a project through a group claim, and loses it once the group is removed in the
provider (canaille, a real OpenID provider, on loopback)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page

from tests.sso.conftest import IDP_PASSWORD, Acme, acme, audit_records, idp_client, provider, server
from tests.support.oidc_provider import Provider
from tests.support.server import RunningServer

pytestmark = pytest.mark.browser
__all__ = ["acme", "idp_client", "provider", "server"]  # the SSO fixtures, used here too


def _through_the_provider(page: Page, provider: Provider, username: str) -> None:
    """On the provider's own pages: its login, password and (the first time) consent forms."""
    page.wait_for_url(f"{provider.issuer}/**")
    if page.locator("#login").count():
        page.locator("#login").fill(username)
        page.locator("#loginform button[type=submit]").click()
        page.locator("#password").fill(IDP_PASSWORD)
        page.locator("#passwordform button[type=submit]").click()
    if page.locator("#accept").count():
        page.locator("#accept").click()


def test_sign_in_with_the_provider_group_claim_grants_and_removal_revokes(
    page: Page, server: RunningServer, provider: Provider, acme: Acme
) -> None:
    hedy = provider.add_user("hedy", IDP_PASSWORD, "Hedy Lamarr", "hedy@example.test")
    team = provider.add_group("ML Team", [hedy])
    page.goto(f"/login?next=/projects/{acme.project}")
    page.get_by_role("link", name="Sign in with Canaille").click()
    _through_the_provider(page, provider, "hedy")
    page.wait_for_url(f"{server.url}/projects/{acme.project}")
    assert "vision" in page.content()
    assert page.get_by_text("hedy").first.is_visible()

    provider.set_members(team, [])
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login")
    page.get_by_role("link", name="Sign in with Canaille").click()
    page.wait_for_url(f"{server.url}/")  # the provider remembered her: straight back
    response = page.goto(f"/projects/{acme.project}")
    assert response is not None and response.status == 404

    records = audit_records(server, acme.org, action="sign_in_sso", actor="hedy")
    assert [r["result"] for r in records] == ["success", "success"]
    assert "left groups ml-team" in records[0]["detail"]


def test_a_refused_sign_in_says_why_on_the_sign_in_page(
    page: Page, server: RunningServer, provider: Provider, idp_client: Any
) -> None:
    provider.add_user("emmy", IDP_PASSWORD, "Emmy Noether", "emmy@example.test")
    page.goto("/login")
    with provider.expired_id_tokens():
        page.get_by_role("link", name="Sign in with Canaille").click()
        _through_the_provider(page, provider, "emmy")
        page.wait_for_url(f"{server.url}/login/sso/canaille/callback**")
    alert = page.get_by_role("alert")
    assert "has expired" in alert.inner_text()
    assert page.get_by_role("link", name="Sign in with Canaille").is_visible()


def test_the_organization_admin_reads_the_audit_log_page_and_a_member_does_not_see_it(
    page: Page, browser: Any, server: RunningServer, provider: Provider, acme: Acme
) -> None:
    from tests.browser.conftest import new_context, sign_in
    from tests.support.server import ADMIN_PASSWORD

    # A member of the organization: one refused sign-in (an expired token), then a good one.
    provider.add_user("rosalind", IDP_PASSWORD, "Rosalind Franklin", "rosalind@example.test")
    member = new_context(browser, server)
    try:
        p2 = member.new_page()
        p2.goto("/login")
        with provider.expired_id_tokens():
            p2.get_by_role("link", name="Sign in with Canaille").click()
            _through_the_provider(p2, provider, "rosalind")
            p2.wait_for_url(f"{server.url}/login/sso/canaille/callback**")
        p2.get_by_role("link", name="Sign in with Canaille").click()
        p2.wait_for_url(f"{server.url}/")
        p2.goto(f"/orgs/{acme.org}?tab=audit")
        assert p2.get_by_role("tab", name="Audit log").count() == 0
        assert p2.locator("table.audit").count() == 0
    finally:
        member.close()

    sign_in(page, "admin", ADMIN_PASSWORD)
    page.goto(f"/orgs/{acme.org}")
    page.get_by_role("tab", name="Audit log").click()
    page.wait_for_url("**tab=audit**")
    assert page.locator("tr[data-action=sign_in_sso]").count() >= 2
    page.get_by_label("Result").select_option("denied")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**result=denied**")
    results = page.locator("table.audit tbody tr td:nth-child(5)").all_inner_texts()
    assert results and all(r.startswith("denied") for r in results)
    assert "has expired" in page.locator("table.audit").inner_text()
    export = page.get_by_role("link", name="Export as JSON Lines")
    assert "result=denied" in (export.get_attribute("href") or "")


def test_the_installation_admin_adds_turns_off_and_removes_a_provider(
    page: Page, server: RunningServer
) -> None:
    from tests.browser.conftest import sign_in
    from tests.support.server import ADMIN_PASSWORD

    sign_in(page, "admin", ADMIN_PASSWORD)
    page.get_by_role("link", name="Single sign-on").click()
    page.wait_for_url("**/admin/sso")
    row = page.locator("tr[data-provider=canaille]")
    assert f"{server.url}/login/sso/canaille/callback" in row.inner_text()
    assert "set in ATOLL_SSO_PROVIDERS" in row.inner_text()

    page.get_by_label("Name", exact=True).fill("backup")
    page.get_by_label("Shown as").fill("Backup IdP")
    page.get_by_label("Issuer URL").fill("http://idp.example.test")  # not https, not loopback
    page.get_by_label("Client id").fill("atoll")
    page.get_by_label("Client secret").fill("backup-client-secret")
    page.get_by_role("button", name="Add provider").click()
    assert "must use https" in page.locator("[data-field=issuer]").inner_text()
    page.get_by_label("Issuer URL").fill("https://idp.example.test/realms/backup")
    page.get_by_label("Client secret").fill("backup-client-secret")
    page.get_by_role("button", name="Add provider").click()
    page.wait_for_url("**/admin/sso")
    backup = page.locator("tr[data-provider=backup]")
    assert "https://idp.example.test/realms/backup" in backup.inner_text()
    assert "backup-client-secret" not in page.content()

    assert "backup" in [p["name"] for p in server.api().get("/auth/providers").json()]
    page.goto("/admin/sso")
    backup.get_by_role("button", name="Turn off").click()
    page.wait_for_url("**/admin/sso")
    assert "backup" not in [p["name"] for p in server.api().get("/auth/providers").json()]
    page.locator("tr[data-provider=backup]").get_by_role("button", name="Remove").click()
    page.wait_for_url("**/admin/sso")
    assert page.locator("tr[data-provider=backup]").count() == 0
