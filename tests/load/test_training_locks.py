"""A default model being built for one session does not stop other sessions scoring (service level).

The credit service is shared by every session of the app. Building the Give Me Some Credit default
takes about a minute here; while one session's build is paused inside its progress callback, another
session must still load and score with the German credit model.
"""

import threading
import time

import pytest

from lucid.core.errors import TrainingCancelled

pytestmark = pytest.mark.slow


def test_scoring_goes_on_while_a_default_is_built(tmp_path):
    from lucid.core.store import ModelStore
    from lucid.domains.finance.service import FinanceService

    store = ModelStore(tmp_path / "models")
    FinanceService(store).load("german_credit")  # built beforehand, read from the store below
    service = FinanceService(store)
    service.load("german_credit")

    building, release = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def progress(_fraction: float, _message: str) -> None:
        building.set()
        release.wait(timeout=60)  # the "long training": paused until the other session has scored

    def build() -> None:
        try:
            service.load("give_me_some_credit", progress=progress, should_stop=release.is_set)
        except TrainingCancelled:
            outcome["build"] = "cancelled"
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            outcome["build"] = repr(exc)

    def score() -> None:
        start = time.monotonic()
        bundle = service.load("german_credit")
        result = service.score(bundle, bundle.demo_rows.drop(columns=[bundle.model.target]).head(20))
        outcome["score"] = (time.monotonic() - start, result)

    builder = threading.Thread(target=build, daemon=True)
    builder.start()
    assert building.wait(timeout=60), "the build did not start"
    scorer = threading.Thread(target=score, daemon=True)
    scorer.start()
    scorer.join(timeout=20)
    finished = not scorer.is_alive()
    release.set()  # the build stops at its next check; nothing is saved
    builder.join(timeout=120)
    scorer.join(timeout=60)
    assert finished, "scoring waited for another session's default build"
    seconds, result = outcome["score"]
    assert seconds < 20 and len(result.table) == 20 and result.table["reason_1"].str.len().gt(0).all()
    assert outcome.get("build") == "cancelled", outcome.get("build")
    assert not store.exists("finance", "give_me_some_credit")


def test_recommendations_go_on_while_the_default_is_built(tmp_path):
    import numpy as np
    import pandas as pd

    from lucid.core.store import ModelStore
    from lucid.domains.recommend.data import prepare_interactions
    from lucid.domains.recommend.model import BPRConfig
    from lucid.domains.recommend.service import DEFAULT_MODEL, RecommendService, TrainConfig

    rng = np.random.default_rng(0)
    log = pd.DataFrame(
        [
            {"user": f"u{u}", "item": f"i{i}", "rating": int(rng.integers(1, 6)), "time": 1_700_000_000 + k}
            for u in range(40)
            for k, i in enumerate(rng.choice(30, size=10, replace=False))
        ]
    )
    data = prepare_interactions(
        log, user_col="user", item_col="item", rating_col="rating", timestamp_col="time", rating_scale=(1, 5)
    )
    tiny = TrainConfig(
        bpr=BPRConfig(dim=8, epochs=20, batch_size=256, lr=0.05), n_candidates=10, ranker_rounds=10
    )
    store = ModelStore(tmp_path / "models")
    RecommendService(store).train(data, "shop", config=tiny, save_anyway=True)  # locks, not quality
    service = RecommendService(store)

    building, release = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def progress(_fraction: float, _message: str) -> None:
        building.set()
        release.wait(timeout=60)
        raise TrainingCancelled("stopped by the test")  # the build ends here; nothing is saved

    def build() -> None:
        try:
            service.load(DEFAULT_MODEL, progress=progress)
        except TrainingCancelled:
            outcome["build"] = "cancelled"

    def recommend() -> None:
        start = time.monotonic()
        table = service.load("shop").recommend("u5").table
        outcome["recommend"] = (time.monotonic() - start, table)

    builder = threading.Thread(target=build, daemon=True)
    builder.start()
    assert building.wait(timeout=60), "the build did not start"
    user = threading.Thread(target=recommend, daemon=True)
    user.start()
    user.join(timeout=20)
    finished = not user.is_alive()
    release.set()
    builder.join(timeout=60)
    assert finished, "recommendations waited for another session's default build"
    seconds, table = outcome["recommend"]
    assert seconds < 20 and len(table) > 0
    assert outcome.get("build") == "cancelled"
    assert not store.exists("recommend", DEFAULT_MODEL)
