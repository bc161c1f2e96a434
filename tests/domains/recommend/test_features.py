import numpy as np
import pandas as pd
import pytest

from lucid.domains.recommend.features import InteractionIndex, build_features, reason_for_feature

DAY = 86400.0
T0 = 1_000_000_000.0


@pytest.fixture
def index():
    rows = [
        ("A", "x", 5, 0), ("A", "y", 4, 1), ("A", "z", 1, 2),
        ("B", "x", 4, 0), ("B", "y", 5, 40),
        ("C", "y", 2, 25), ("C", "w", 5, 30),
    ]  # fmt: skip
    frame = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])
    frame["timestamp"] = T0 + frame["timestamp"] * DAY
    frame["rating"] = frame["rating"].astype(float)
    cats = {"x": "Action", "y": "Action|Drama", "z": "Drama", "w": "Comedy"}
    items = ["w", "x", "y", "z"]
    return InteractionIndex(frame, ["A", "B", "C"], items, [cats[i] for i in items], like_threshold=4)


def test_features_by_hand(index):
    w, x, y, z = range(4)
    profile = index.profile(1)  # user B: x (day 0, rated 4) then y (day 40, rated 5)
    assert profile.items.tolist() == [x, y] and profile.liked.tolist() == [x, y]
    feats = build_features(index, [profile], np.array([[z, w]]))
    value = dict(zip(feats.feature_names, feats.values.T, strict=True))
    sim_zx = 1 / (np.sqrt(1 * 2) + 10)  # shared by A; z has 1 user, x has 2; shrink 10
    sim_zy = 1 / (np.sqrt(1 * 3) + 10)
    sim_wy = 1 / (np.sqrt(1 * 3) + 10)  # shared by C
    assert value["similarity_to_liked"] == pytest.approx([sim_zx, sim_wy], rel=1e-5)
    assert value["similarity_to_recent"] == pytest.approx([(sim_zx + sim_zy) / 2, sim_wy / 2], rel=1e-5)
    assert feats.best_liked.tolist() == [x, y] and feats.best_liked_rating.tolist() == [4.0, 5.0]
    assert value["cf_rank"].tolist() == [1, 2]
    assert value["popularity"].tolist() == [1, 1]
    assert value["trend"].tolist() == [0, 1]  # w was chosen on day 30, within 28 days before day 40
    assert value["item_age_days"] == pytest.approx([38, 10])
    mean = 26 / 7
    assert value["avg_rating"][0] == pytest.approx((1 + 5 * mean) / 6, rel=1e-5)
    assert value["category_affinity"].tolist() == [0.5, 0.0]  # half of B's items are Drama; none Comedy
    assert feats.best_category[0] == index.category_names.index("Drama") and feats.best_category[1] == -1
    assert value["user_activity"].tolist() == [2, 2]


def test_unliked_items_are_not_quoted_as_liked(index):
    w, x, y, z = range(4)
    profile = index.profile(2)  # user C: y rated 2 (not liked), w rated 5
    assert profile.liked.tolist() == [w]
    feats = build_features(index, [profile], np.array([[x, z]]))
    assert feats.best_liked.tolist() == [w, w]
    assert feats.values[:, feats.feature_names.index("similarity_to_liked")].tolist() == [0.0, 0.0]


def test_reason_phrases(index):
    w, x, y, z = range(4)
    feats = build_features(index, [index.profile(1)], np.array([[z, w]]))
    titles = ["Widget", "Xylo", "Yoyo", "Zither"]
    kwargs = {
        "feats": feats,
        "index": index,
        "titles": titles,
        "rating_scale": (1.0, 5.0),
        "item_word": "toy",
    }
    assert reason_for_feature("similarity_to_liked", 0.1, row=1, **kwargs) == "because you rated Yoyo 5/5"
    assert reason_for_feature("category_affinity", 0.5, row=0, **kwargs) == (
        "you choose a lot of Drama (50% of your toys)"
    )
    assert "2 picks" in reason_for_feature("trend", 2, row=1, **kwargs)
    kwargs["rating_scale"] = None
    assert reason_for_feature("similarity_to_liked", 0.1, row=1, **kwargs) == "because you chose Yoyo"
