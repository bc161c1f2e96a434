"""What a simulated user does on each page, up to the page's key result."""

from __future__ import annotations

from load.harness import Scenario


async def _home(page) -> None:
    await page.get_by_text("Compute device").wait_for()


SCENARIOS: dict[str, Scenario] = {
    "home": Scenario("home", "", _home, timeout_s=60),
}
