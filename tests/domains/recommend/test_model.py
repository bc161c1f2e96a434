import numpy as np
import pytest
import torch

from lucid.core.errors import ModelNotFoundError, TrainingCancelled
from lucid.domains.recommend.model import RECOMMEND_MODELS, BPRConfig, fold_in_user, train_bpr
from lucid.domains.recommend.movielens import MOVIELENS_GENRES, load_movielens


def two_groups(n_users: int = 40, n_items: int = 30, per_user: int = 10, seed: int = 0):
    """Even users pick items of the first half, odd users of the second half."""
    rng = np.random.default_rng(seed)
    half = n_items // 2
    users, items = [], []
    for u in range(n_users):
        own = 0 if u % 2 == 0 else half
        for i in rng.choice(half, size=per_user, replace=False):
            users.append(u)
            items.append(own + int(i))
    return np.array(users), np.array(items)


def test_bpr_learns_the_groups(device):
    users, items = two_groups()
    model = train_bpr(
        users,
        items,
        n_users=40,
        n_items=30,
        config=BPRConfig(dim=8, epochs=80, batch_size=128, lr=0.05),
        device=device,
    )
    assert next(model.parameters()).device.type == "cpu"
    with torch.inference_mode():
        scores = model.score_all(torch.arange(40)).numpy()
    own_first = scores[0::2, :15].mean() - scores[0::2, 15:].mean()
    own_second = scores[1::2, 15:].mean() - scores[1::2, :15].mean()
    assert own_first > 0.5 and own_second > 0.5


def test_fold_in_user_prefers_the_liked_group():
    users, items = two_groups()
    model = train_bpr(
        users, items, n_users=40, n_items=30, config=BPRConfig(dim=8, epochs=80, batch_size=128)
    )
    vector = fold_in_user(model, np.array([16, 17, 18]))
    with torch.inference_mode():
        scores = (model.item_emb.weight @ vector + model.item_bias.weight.squeeze(-1)).numpy()
    assert scores[15:].mean() > scores[:15].mean()


def test_training_can_be_cancelled_and_reports_progress():
    users, items = two_groups()
    seen = []
    train_bpr(
        users,
        items,
        n_users=40,
        n_items=30,
        config=BPRConfig(dim=4, epochs=3),
        progress=lambda f, m: seen.append(f),
    )
    assert seen == pytest.approx([1 / 3, 2 / 3, 1.0])
    with pytest.raises(TrainingCancelled):
        train_bpr(users, items, n_users=40, n_items=30, should_stop=lambda: True)


def test_movielens_files_and_registry():
    tables = load_movielens()
    assert tables.ratings.shape == (100_000, 4)
    assert tables.ratings["user_id"].nunique() == 943 and tables.ratings["movie_id"].nunique() == 1682
    assert len(tables.items) == 1682 and len(tables.users) == 943
    star_wars = tables.items.set_index("movie_id").loc[50]
    assert star_wars["title"].startswith("Star Wars") and "Sci-Fi" in star_wars["genres"].split("|")
    assert set("|".join(tables.items["genres"]).split("|")) <= set(MOVIELENS_GENRES)
    spec = RECOMMEND_MODELS.get("movielens-100k")
    assert "commercial use is forbidden" in spec.licence
    with pytest.raises(ModelNotFoundError, match="movielens-100k"):
        RECOMMEND_MODELS.get("netflix")
