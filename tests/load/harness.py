"""Drive many concurrent sessions of the real app in headless Chromium (one browser, one context per user).

Used by the short load test in ``tests/load`` and the longer run in ``bench/bench_load.py``.
Each simulated user opens a page (a new Streamlit session), runs that page's scenario up to its
key result, and starts over on the next page until the time is up. A run reports errors, time to
result per page (p50/p95) and the server's peak memory.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
FAILURE_TEXT = ("Something went wrong", "Traceback", "This app has encountered an error")


@dataclass(frozen=True)
class Scenario:
    """A page and the steps that take a user from opening it to its key result."""

    name: str
    path: str  # URL path of the page, "" for Home
    run: Callable[[object], Awaitable[None]]  # async (playwright Page) -> None; raises on failure
    timeout_s: float = 120.0


@dataclass
class LoadResult:
    sessions: int
    seconds: float
    times: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    peak_rss_mb: float = 0.0

    def summary(self) -> dict[str, dict[str, float]]:
        out = {}
        for name, values in self.times.items():
            ordered = sorted(values)
            p95 = (
                ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
                if ordered
                else float("nan")
            )
            out[name] = {
                "runs": len(values),
                "p50_s": statistics.median(values) if values else float("nan"),
                "p95_s": p95,
            }
        return out


def process_tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB (Linux /proc)."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task")
    if children.exists():
        for task in children.iterdir():
            kids = task / "children"
            if kids.exists():
                pids += [int(x) for x in kids.read_text().split()]
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


class MemorySampler:
    """Samples a process tree's RSS in a thread and keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid, self.interval, self.peak = pid, interval, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, process_tree_rss_mb(self.pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, process_tree_rss_mb(self.pid))


async def _check_page(page: object) -> None:
    exceptions = page.locator('[data-testid="stException"]')  # type: ignore[attr-defined]
    if await exceptions.count():
        raise AssertionError("the page shows an exception")
    body = await page.inner_text("body")  # type: ignore[attr-defined]
    for text in FAILURE_TEXT:
        if text in body:
            raise AssertionError(f"the page shows '{text}'")


async def _user(
    browser: object,
    base_url: str,
    scenarios: list[Scenario],
    index: int,
    deadline: float,
    result: LoadResult,
    min_runs: int,
) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    k = index
    try:
        while k - index < min_runs or time.monotonic() < deadline:
            scenario = scenarios[k % len(scenarios)]
            k += 1
            page = await context.new_page()
            page.set_default_timeout(scenario.timeout_s * 1000)
            start = time.monotonic()
            try:
                await page.goto(f"{base_url}/{scenario.path}", wait_until="domcontentloaded")
                await scenario.run(page)
                await _check_page(page)
                result.times.setdefault(scenario.name, []).append(time.monotonic() - start)
            except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
                result.errors.append(f"user {index} {scenario.name}: {type(exc).__name__}: {str(exc)[:200]}")
            finally:
                await page.close()
    finally:
        await context.close()


async def _run(
    base_url: str, scenarios: list[Scenario], sessions: int, seconds: float, result: LoadResult, min_runs: int
) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        deadline = time.monotonic() + seconds
        try:
            await asyncio.gather(
                *[_user(browser, base_url, scenarios, i, deadline, result, min_runs) for i in range(sessions)]
            )
        finally:
            await browser.close()


def run_load(
    base_url: str,
    server_pid: int,
    scenarios: list[Scenario],
    *,
    sessions: int,
    seconds: float,
    min_runs: int = 1,
) -> LoadResult:
    """Run ``sessions`` concurrent users for ``seconds``; each user runs at least ``min_runs``
    scenarios (user *i* starts at scenario *i*, round robin) and finishes the one it is in."""
    result = LoadResult(sessions=sessions, seconds=seconds)
    start = time.monotonic()
    with MemorySampler(server_pid) as memory:
        asyncio.run(_run(base_url, scenarios, sessions, seconds, result, min_runs))
    result.seconds = time.monotonic() - start
    result.peak_rss_mb = memory.peak
    return result
