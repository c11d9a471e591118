"""Pages work under a Content-Security-Policy that runs no inline script (every browser
test fails on a blocked script: tests/browser/conftest.py)."""

from __future__ import annotations

from browser_helpers import shot


def test_the_api_docs_render_without_inline_script(page):
    """/api/docs: Swagger UI starts from its script file and lists the operations."""
    page.goto("/api/docs")
    page.locator(".swagger-ui .opblock").first.wait_for()
    assert "Interfant-21 biobank" in page.locator(".swagger-ui .info").inner_text()
    shot(page, "api-docs")


def test_an_inline_script_does_not_run(chromium, live_server):
    """A script that found its way into a page (here: written into the login page) is
    blocked by the policy, and the browser says so. (Its own context: the page fixture
    fails any test with a blocked script.)"""
    context = chromium.new_context(base_url=live_server.url)
    try:
        tab = context.new_page()
        blocked: list[str] = []
        tab.on(
            "console",
            lambda message: (
                blocked.append(message.text) if "Content Security Policy" in message.text else None
            ),
        )
        tab.goto("/login")
        tab.evaluate("""() => {
            const script = document.createElement("script");
            script.textContent = "window.injected = true";
            document.body.append(script);
        }""")
        assert tab.evaluate("() => window.injected === undefined")
        tab.wait_for_function("() => true")
        for _ in range(50):
            if blocked:
                break
            tab.wait_for_timeout(20)
        assert blocked, "the browser did not report the blocked script"
    finally:
        context.close()
