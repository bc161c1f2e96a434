"""Short load test: 20 concurrent browser sessions against the real app (long run: bench/bench_load.py)."""

import pytest

from tests.load.harness import CHROMIUM, run_load
from tests.load.scenarios import SCENARIOS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None, reason="Debian's chromium is not installed (make browser-deps installs it)"
    ),
]


def scenarios_ready(model_dir=None) -> list:
    """Every page's scenario; the review-sentiment page only once its default model is built in the
    server's model store (building it is a one-off of about 15 minutes on 2 cores, by `make models`)."""
    from lucid.core.store import ModelStore
    from lucid.domains.nlp.service import NLPService

    ready = NLPService(ModelStore(model_dir) if model_dir else None).is_built("review_sentiment")
    return [s for name, s in SCENARIOS.items() if name != "nlp" or ready]


def test_twenty_concurrent_sessions_across_pages_without_errors(live_app_process, live_model_dir):
    proc, url = live_app_process
    scenarios = scenarios_ready(live_model_dir)
    result = run_load(url, proc.pid, scenarios, sessions=20, seconds=0)
    assert result.errors == []
    assert sum(len(v) for v in result.times.values()) >= 20
    assert set(result.times) == {s.name for s in scenarios}  # every page reached its result
    for name, stats in result.summary().items():
        assert stats["p95_s"] < SCENARIOS[name].timeout_s, name
    assert result.peak_rss_mb > 100  # the sampler really measured the server
