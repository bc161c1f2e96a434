"""One user's long training job while another user keeps using the app (headless Chromium).

The first user, in its own browser context (its own Streamlit session), runs a long training job on
the credit page: "Train your own" on the uploaded 150,000-row Give Me Some Credit table, or the
first-use build of the Give Me Some Credit default model (same size). A second user, in another
context, runs cheap page flows (Home rendered; the credit page's demo applicants scored) first with
the server idle, then over and over while the training runs. Used by the short test in
``tests/load/test_training_wait.py`` and the benchmark ``bench/bench_training_wait.py``.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.load.harness import CHROMIUM, CHROMIUM_ARGS, MemorySampler, Scenario, _check_page
from tests.load.scenarios import SCENARIOS

GMSC_TARGET = "SeriousDlqin2yrs"
GMSC_DEFAULT = "give_me_some_credit"
TRAINED_NAME = "gmsc-long-training"
OBSERVED = ("home", "finance")


def gmsc_upload(rows: int | None = None) -> bytes:
    """The Give Me Some Credit table as the CSV a user would upload, its target as the last column
    (the page offers the last column as the target)."""
    from lucid.domains.finance.model import give_me_some_credit

    df = give_me_some_credit()
    if rows is not None and rows < len(df):
        df = df.sample(rows, random_state=0)
    columns = [c for c in df.columns if c != GMSC_TARGET] + [GMSC_TARGET]
    return df[columns].to_csv(index=False).encode()


@dataclass
class Run:
    """One pass of a scenario by the observing user; ``start``: seconds after the training started
    (0 for the idle runs)."""

    page: str
    start: float
    seconds: float
    error: str = ""


@dataclass
class TrainingWait:
    idle: list[Run] = field(default_factory=list)
    during: list[Run] = field(default_factory=list)
    job: str = ""
    training_seconds: float = float("nan")
    training_error: str = ""
    rows: int = 0  # rows the job trains on
    peak_rss_mb: float = 0.0

    def times(self, which: str, page: str) -> list[float]:
        runs = self.idle if which == "idle" else self.during
        return [r.seconds for r in runs if r.page == page and not r.error]

    def errors(self) -> list[str]:
        out = [f"training: {self.training_error}"] if self.training_error else []
        out += [f"{r.page} (idle): {r.error}" for r in self.idle if r.error]
        out += [f"{r.page} (during training): {r.error}" for r in self.during if r.error]
        return out

    def summary(self) -> dict[str, dict[str, float]]:
        """Per observed page: idle median, during-training median and max, and their ratio."""
        out = {}
        for page in OBSERVED:
            idle, during = self.times("idle", page), self.times("during", page)
            idle_p50 = statistics.median(idle) if idle else float("nan")
            during_p50 = statistics.median(during) if during else float("nan")
            out[page] = {
                "idle_runs": len(idle),
                "idle_p50_s": idle_p50,
                "during_runs": len(during),
                "during_p50_s": during_p50,
                "during_max_s": max(during) if during else float("nan"),
                "ratio_p50": during_p50 / idle_p50 if idle and during else float("nan"),
            }
        return out


async def _one_run(context, base_url: str, scenario: Scenario, t0: float) -> Run:
    page = await context.new_page()
    page.set_default_timeout(scenario.timeout_s * 1000)
    start = time.monotonic()
    try:
        await page.goto(f"{base_url}/{scenario.path}", wait_until="domcontentloaded")
        await scenario.run(page)
        await _check_page(page)
        return Run(scenario.name, start - t0, time.monotonic() - start)
    except Exception as exc:  # noqa: BLE001 - a failed run is reported, not raised
        return Run(scenario.name, start - t0, time.monotonic() - start, f"{type(exc).__name__}: {exc}"[:300])
    finally:
        await page.close()


async def _rounds(context, base_url: str, rounds: int) -> list[Run]:
    runs = []
    for _ in range(rounds):
        for name in OBSERVED:
            runs.append(await _one_run(context, base_url, SCENARIOS[name], time.monotonic()))
    return runs


async def _observe(context, base_url: str, t0: float, stop: Callable[[], bool], deadline: float) -> list[Run]:
    """Scenario after scenario until ``stop()`` (the training finished) or the deadline; every run
    that starts while the training is running is kept, however long it takes."""
    runs, k = [], 0
    while not stop() and time.monotonic() < deadline:
        runs.append(await _one_run(context, base_url, SCENARIOS[OBSERVED[k % len(OBSERVED)]], t0))
        k += 1
    return runs


async def start_credit_training(page, base_url: str, data: bytes) -> str:
    """Upload the labelled table on the credit page's "Train your own" tab, click Train and return,
    once the boosting has started (its progress text shows), the text that shows when it is done."""
    await page.goto(f"{base_url}/finance", wait_until="domcontentloaded")
    await page.get_by_text("Baseline AUC (logistic)").wait_for()
    await page.get_by_role("tab", name="Train your own").click()
    uploader = page.locator('[data-testid="stFileUploader"]').filter(has_text="Labelled file")
    await uploader.locator('input[type="file"]').set_input_files(
        files=[{"name": "give_me_some_credit.csv", "mimeType": "text/csv", "buffer": data}]
    )
    name_box = page.get_by_label("Save as")
    await name_box.wait_for()
    await name_box.fill(TRAINED_NAME)
    await name_box.press("Enter")
    await page.wait_for_timeout(500)  # the rerun that takes the name
    await page.get_by_role("button", name="Train", exact=True).click()
    await page.get_by_text("of at most").first.wait_for()
    return f"Saved as '{TRAINED_NAME}'"


async def start_default_build(page, base_url: str, data: bytes) -> str:
    """Pick the Give Me Some Credit default, not built yet, in the credit page's model list, and
    return, once its build has reached the boosting, the text that shows when it is done."""
    del data  # the default is built from its packaged table
    await page.goto(f"{base_url}/finance", wait_until="domcontentloaded")
    await page.get_by_text("Baseline AUC (logistic)").wait_for()
    await page.locator('[data-testid="stSelectbox"]').filter(has_text="Model").first.click()
    await page.get_by_role("option", name=GMSC_DEFAULT, exact=True).click()
    await page.get_by_text("Building the default model").first.wait_for()
    await page.get_by_text("of at most").first.wait_for()
    return f"Model '{GMSC_DEFAULT}' built and saved."


JOBS = {
    "train-your-own": start_credit_training,
    "default-build": start_default_build,
}


async def _measure(
    base_url: str, data: bytes, job: str, idle_rounds: int, train_timeout_s: float
) -> TrainingWait:
    from playwright.async_api import async_playwright

    result = TrainingWait(job=job)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            observer = await browser.new_context(viewport={"width": 1280, "height": 900})
            await _rounds(observer, base_url, 1)  # warm-up: first loads and caches
            result.idle = await _rounds(observer, base_url, idle_rounds)

            trainer = await browser.new_context(viewport={"width": 1280, "height": 900})
            page = await trainer.new_page()
            page.set_default_timeout(180_000)
            done_text = await JOBS[job](page, base_url, data)
            t0 = time.monotonic()
            finished = asyncio.Event()

            async def wait_for_training() -> None:
                try:
                    done = page.get_by_text(done_text).first
                    await done.wait_for(timeout=train_timeout_s * 1000)
                    result.training_seconds = time.monotonic() - t0
                    await _check_page(page)
                except Exception as exc:  # noqa: BLE001 - reported with the measurement
                    result.training_error = f"{type(exc).__name__}: {exc}"[:300]
                finally:
                    finished.set()

            waiter = asyncio.create_task(wait_for_training())
            result.during = await _observe(observer, base_url, t0, finished.is_set, t0 + train_timeout_s)
            await waiter
            await trainer.close()
            await observer.close()
        finally:
            await browser.close()
    return result


def measure_training_wait(
    base_url: str,
    server_pid: int,
    data: bytes,
    *,
    job: str = "train-your-own",
    idle_rounds: int = 3,
    train_timeout_s: float = 900,
) -> TrainingWait:
    """Idle time to result of the observed pages, then the same while one session runs ``job``
    (``train-your-own`` on the uploaded ``data``, or ``default-build``, which ignores it)."""
    with MemorySampler(server_pid) as memory:
        result = asyncio.run(_measure(base_url, data, job, idle_rounds, train_timeout_s))
    result.peak_rss_mb = memory.peak
    if job == "train-your-own":
        result.rows = data.count(b"\n") - 1
    else:
        from lucid.domains.finance.model import give_me_some_credit

        result.rows = len(give_me_some_credit())
    return result
