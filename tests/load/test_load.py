"""Short load test: 20 concurrent browser sessions against the real app (long run: bench/bench_load.py)."""

import pytest

from load.harness import CHROMIUM, run_load
from load.scenarios import SCENARIOS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None, reason="Debian's chromium is not installed (make browser-deps installs it)"
    ),
]


def test_twenty_concurrent_sessions_without_errors(live_app_process):
    proc, url = live_app_process
    result = run_load(url, proc.pid, list(SCENARIOS.values()), sessions=20, seconds=0)
    assert result.errors == []
    runs = sum(len(v) for v in result.times.values())
    assert runs >= 20
    for name, stats in result.summary().items():
        assert stats["p95_s"] < SCENARIOS[name].timeout_s, name
    assert result.peak_rss_mb > 100  # the sampler really measured the server
