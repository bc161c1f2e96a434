"""The real app in headless Chromium (Debian's chromium driven by Playwright)."""

import pytest

from tests.load.harness import CHROMIUM, CHROMIUM_ARGS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None, reason="Debian's chromium is not installed (make browser-deps installs it)"
    ),
]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_home_renders_with_navigation(live_app, browser, tmp_path):
    from lucid.ui.catalogue import available_pages

    page = browser.new_page()
    page.goto(live_app, wait_until="domcontentloaded")
    page.get_by_text("Explainable AI for business data").wait_for(timeout=60_000)
    page.get_by_text("Start here", exact=True).wait_for(timeout=30_000)
    page.get_by_text("This installation: compute device and library versions").click()
    page.get_by_test_id("stMetricLabel").get_by_text("Compute device").wait_for(timeout=30_000)
    nav = page.locator('[data-testid="stSidebarNav"]')
    for info in available_pages():
        assert nav.get_by_text(info.title).count() >= 1
    page.screenshot(path=str(tmp_path / "home.png"), full_page=True)
    assert (tmp_path / "home.png").stat().st_size > 10_000
    page.close()


def test_direct_page_url_goes_through_app_navigation(live_app, browser):
    """Opening a domain page's URL directly runs app.py (titles, not file names, in the menu)."""
    page = browser.new_page()
    page.goto(f"{live_app}/finance", wait_until="domcontentloaded")
    nav = page.locator('[data-testid="stSidebarNav"]')
    nav.get_by_text("Credit risk").wait_for(timeout=60_000)
    text = nav.inner_text()
    assert "Home" in text and "Recommendations" in text
    assert "app" not in text.split() and "finance" not in text.split()
    page.close()
