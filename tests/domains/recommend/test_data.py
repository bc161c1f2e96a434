import warnings

import numpy as np
import pandas as pd
import pytest

from lucid.core.errors import InvalidInputError
from lucid.domains.recommend.data import (
    attach_item_table,
    attach_user_table,
    parse_timestamps,
    prepare_interactions,
    temporal_split,
)


def small_log(n_users: int = 6, per_user: int = 5) -> pd.DataFrame:
    rows = []
    for u in range(n_users):
        for k in range(per_user):
            rows.append(
                {
                    "customer": f"c{u}",
                    "sku": f"s{(u + k) % 9}",
                    "stars": 1 + (u + k) % 5,
                    "when": 1000 * u + k,
                }
            )
    return pd.DataFrame(rows)


def prep(df, **kw):
    args = {"user_col": "customer", "item_col": "sku", "rating_col": "stars", "timestamp_col": "when"}
    args.update(kw)
    return prepare_interactions(df, **args)


def test_standard_columns_and_scale():
    data = prep(small_log(), rating_scale=(1, 5))
    assert list(data.interactions.columns) == ["user", "item", "rating", "timestamp"]
    assert data.rating_scale == (1.0, 5.0)
    assert data.like_threshold == pytest.approx(1 + 0.7 * 4)
    assert data.has_time and data.has_ratings
    assert len(data.interactions) == 30
    assert set(data.items.index) == {f"s{k}" for k in range(9)}


def test_missing_columns_are_named():
    with pytest.raises(InvalidInputError, match="user column 'client' is not in the table"):
        prep(small_log(), user_col="client")
    with pytest.raises(InvalidInputError, match="item column"):
        prep(small_log(), item_col=None)


def test_non_numeric_ratings_are_refused_with_examples():
    df = small_log()
    df["stars"] = df["stars"].astype(object)
    df.loc[3, "stars"] = "five"
    with pytest.raises(InvalidInputError, match="not numbers.*'five'"):
        prep(df)


def test_ratings_outside_the_declared_scale():
    df = small_log()
    df.loc[0, "stars"] = 7
    with pytest.raises(InvalidInputError, match="outside the declared scale 1-5.*7"):
        prep(df, rating_scale=(1, 5))


def test_duplicate_events_are_merged_keeping_the_latest():
    df = small_log()
    extra = pd.DataFrame([{"customer": "c0", "sku": "s0", "stars": 2, "when": 999}])
    data = prep(pd.concat([df, extra], ignore_index=True))
    assert len(data.interactions) == 30
    row = data.interactions.query("user == 'c0' and item == 's0'")
    assert row["rating"].tolist() == [2.0] and row["timestamp"].tolist() == [999.0]
    assert any("repeated events" in n for n in data.notes)


def test_single_interaction_users_are_noted_and_all_single_is_refused():
    df = pd.concat([small_log(), pd.DataFrame([{"customer": "lonely", "sku": "s1", "stars": 3, "when": 5}])])
    data = prep(df)
    assert any("1 users have a single interaction" in n for n in data.notes)
    train, test = temporal_split(data.interactions)
    assert "lonely" in set(train["user"]) and "lonely" not in set(test["user"])
    singles = pd.DataFrame(
        {"customer": [f"u{k}" for k in range(30)], "sku": [f"i{k % 7}" for k in range(30)]}
    )
    with pytest.raises(InvalidInputError, match="single interaction"):
        prepare_interactions(singles, user_col="customer", item_col="sku")


def test_timestamps_in_several_formats():
    values = pd.Series(["2024-03-01 10:00:00", "1709287200", "March 1, 2024 10:00", "2024-03-01T10:00:00Z"])
    seconds = parse_timestamps(values)
    assert np.allclose(seconds, 1709287200.0)
    assert np.allclose(parse_timestamps(pd.Series([1709287200000, 1709287200000])), 1709287200.0)
    with pytest.raises(InvalidInputError, match="could not be read.*'soon'"):
        parse_timestamps(pd.Series(["2024-03-01", "soon"]))


def test_item_table_ids_must_match():
    data = prep(small_log())
    table = pd.DataFrame({"id": ["x1", "x2"], "name": ["A", "B"]})
    with pytest.raises(InvalidInputError, match="No item id in the item table"):
        attach_item_table(data, table, id_col="id", title_col="name")
    table = pd.DataFrame(
        {
            "id": ["s0", "s1", "zz"],
            "name": ["Zero", "One", "Extra"],
            "kind": ["A|B", "B", "C"],
            "Sci": [1, 0, 1],
        }
    )
    out = attach_item_table(data, table, id_col="id", title_col="name", category_cols=["kind", "Sci"])
    assert out.items.loc["s0", "title"] == "Zero" and out.items.loc["s5", "title"] == "s5"
    assert out.items.loc["s0", "categories"] == "A|B|Sci"
    assert out.items.loc["s1", "categories"] == "B"
    assert any("not in the item table" in n for n in out.notes)
    with pytest.raises(InvalidInputError, match="No user id"):
        attach_user_table(data, pd.DataFrame({"uid": ["nobody"], "age": [3]}), id_col="uid")


def test_wide_fragmented_tables_attach_without_warnings_first_row_per_id():
    """A table with many columns added one by one (as a wide upload can be) attaches quietly."""
    data = prep(small_log())
    items = pd.DataFrame({"id": ["s0", "s1", "s0"], "name": ["Zero", "One", "Zero again"]})
    users = pd.DataFrame({"uid": ["c0", "c1", "c0"]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pd.errors.PerformanceWarning)  # building it is what fragments it
        for k in range(150):
            items[f"x{k}"] = k
            users[f"a{k}"] = [k, k + 1, k + 2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = attach_item_table(data, items, id_col="id", title_col="name")
        out = attach_user_table(out, users, id_col="uid")
    assert out.items.loc["s0", "title"] == "Zero"  # the first row of a repeated id
    assert out.users.loc["c0", "a3"] == 3 and out.users.loc["c1", "a3"] == 4
    assert "uid" not in out.users.columns


def test_temporal_split_leaks_nothing():
    data = prep(small_log(n_users=8, per_user=9))
    train, test = temporal_split(data.interactions, test_fraction=0.2)
    assert len(train) + len(test) == len(data.interactions)
    assert not set(zip(train.user, train.item, strict=True)) & set(zip(test.user, test.item, strict=True))
    for user, part in test.groupby("user"):
        assert len(part) == 2
        assert train.loc[train.user == user, "timestamp"].max() <= part["timestamp"].min()


def test_random_split_without_time():
    data = prepare_interactions(small_log(n_users=8, per_user=9), user_col="customer", item_col="sku")
    assert not data.has_time and not data.has_ratings
    train, test = temporal_split(data.interactions, test_fraction=0.3, seed=1)
    assert test.groupby("user").size().eq(3).all()
    assert len(train) == 8 * 6
