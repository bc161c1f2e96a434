"""One user's long training does not freeze the others (the real app in headless Chromium).

While one session trains a credit model on 150,000 rows (about a minute here), another session keeps
getting its results (Home rendered; demo applicants scored) within a bound derived from its own idle
time; a regression that serialises sessions behind the training fails. Numbers: bench/bench_training_wait.py.
"""

import shutil

import pytest

from tests.load.harness import CHROMIUM
from tests.load.training import JOBS, OBSERVED, gmsc_upload, measure_training_wait

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None, reason="Debian's chromium is not installed (make browser-deps installs it)"
    ),
]

SLOWDOWN = 5.0  # times the idle median
SLACK_S = 5.0  # plus this, for the CPU the training takes from the other session on a small machine
MIN_RUNS = 2  # runs of each observed flow that start while the training runs


@pytest.fixture(scope="module")
def app(tmp_path_factory, german_store):
    """The real app on loopback, its own model store with only the German credit default built (the
    Give Me Some Credit default is built by the ``default-build`` job).

    The jobs write into the store, so it is a copy of the session's German credit store, not that store.
    """
    from tests.live_app import start_app, stop_app

    root = tmp_path_factory.mktemp("training-wait-models")
    shutil.copytree(german_store / "finance" / "german_credit", root / "finance" / "german_credit")
    proc, url = start_app({"LUCID_MODEL_DIR": str(root)})
    yield proc, url
    stop_app(proc)


@pytest.fixture(scope="module")
def upload():
    return gmsc_upload()


@pytest.mark.parametrize("job", list(JOBS))
def test_other_sessions_get_results_while_one_trains(app, upload, job):
    proc, url = app
    result = measure_training_wait(url, proc.pid, upload, job=job, idle_rounds=2, train_timeout_s=600)
    assert result.errors() == []
    assert result.training_seconds > 10, "the job was too short to measure anything"
    summary = result.summary()
    for page in OBSERVED:
        stats = summary[page]
        bound = SLOWDOWN * stats["idle_p50_s"] + SLACK_S
        # A short training run (on a quiet machine the 150,000-row job can take ~10 s) leaves room for
        # one run of a slower flow; serialised sessions still fail the bound below.
        room = int(result.training_seconds // max(stats["idle_p50_s"] * 2, 1e-9))
        assert stats["during_runs"] >= max(1, min(MIN_RUNS, room)), (page, summary, result.training_seconds)
        assert stats["during_max_s"] < bound, (page, f"bound {bound:.1f} s", summary)
