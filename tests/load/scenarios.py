"""What a simulated user does on each page, up to the page's key result."""

from __future__ import annotations

from tests.load.harness import Scenario


async def _home(page) -> None:
    await page.get_by_text("Start here", exact=True).wait_for()


async def _finance(page) -> None:
    # The model card's held-out metrics, then the demo applicants scored with reasons.
    await page.get_by_text("Baseline AUC (logistic)").wait_for()
    await page.get_by_role("tab", name="Score").click()
    await page.locator('[data-testid="stMetric"]').filter(has_text="Mean PD").wait_for()


async def _vision(page) -> None:
    # The two sample photos preselected on the page are classified.
    await page.locator('[data-testid="stMetric"]').filter(has_text="Top class").wait_for()


async def _medical(page) -> None:
    await page.get_by_text("Sample", exact=True).first.click()
    await page.get_by_role("button", name="Classify this slice").click()
    await page.locator('[data-testid="stMetric"]').filter(has_text="Most likely class").wait_for()


async def _recommend(page) -> None:
    await page.get_by_text("Top 10 for").first.wait_for()


async def _nlp(page) -> None:
    await page.get_by_role("button", name="Analyse").click()
    await page.get_by_text("shares add up within").first.wait_for(timeout=240_000)


SCENARIOS: dict[str, Scenario] = {
    "home": Scenario("home", "", _home, timeout_s=60),
    "finance": Scenario("finance", "finance", _finance),
    "vision": Scenario("vision", "vision", _vision),
    "medical": Scenario("medical", "medical", _medical),
    "recommend": Scenario("recommend", "recommend", _recommend),
    "nlp": Scenario("nlp", "nlp", _nlp),
}
