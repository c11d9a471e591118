"""The admin's users page in a browser: create a user, issue a token (shown once), limit
them to a site, deactivate them; the token works until then and not after."""

from __future__ import annotations

from browser_helpers import log_in, shot


def test_an_admin_manages_a_user_from_the_page(page):
    """Create a technician, issue a token, change the scope, deactivate: each step on the
    page, the token copied from the page answers /api/v1/me, then is refused."""
    log_in(page, "demo-admin", "/users")
    page.get_by_label("Username").fill("browser-tech")
    page.get_by_label("Full name").fill("Browser Tech")
    page.get_by_label("Role").select_option("technician")
    page.get_by_label("Limited to sites").select_option(["DE-KIEL"])
    page.get_by_role("button", name="Create user").click()
    page.wait_for_url("**/users/browser-tech")
    assert "browser-tech created" in page.get_by_role("status").first.inner_text()
    page.get_by_role("button", name="Issue a token").click()
    token = page.get_by_label("Token", exact=True).input_value()
    assert token.startswith("bbk_")
    shot(page, "user-token-issued")
    me = page.request.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["username"] == "browser-tech" and me.json()["sites"] == ["DE-KIEL"]
    page.goto("/users/browser-tech")
    assert token not in page.content()
    page.get_by_label("Limited to sites").select_option(["DE-KIEL", "NL-PMC"])
    page.get_by_label("Reason (kept in the audit trail)").fill("covers Utrecht too")
    page.get_by_role("button", name="Save changes").click()
    page.wait_for_url("**/users/browser-tech")
    assert "DE-KIEL, NL-PMC" in page.locator("dl.facts").inner_text()
    page.get_by_label("Reason", exact=True).fill("left the lab")
    page.get_by_role("button", name="Deactivate browser-tech").click()
    page.wait_for_url("**/users/browser-tech")
    assert "(deactivated)" in page.get_by_role("heading", level=1).inner_text()
    refused = page.request.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert refused.status == 401
    page.goto("/users")
    row = page.get_by_role("row").filter(has_text="browser-tech")
    assert "deactivated" in row.inner_text()
    shot(page, "users")
