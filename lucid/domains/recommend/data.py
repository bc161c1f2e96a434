"""Interaction logs for the recommender: validation, item and user tables, and the leakage-free split.

An interaction log has a user column and an item column, and optionally a rating and a timestamp.
Explicit ratings (e.g. 1-5 stars) and implicit events (clicks, purchases: no rating column) both
work. Every problem a user can fix raises :class:`InvalidInputError` with a message saying what to
change; problems that can be repaired without losing information (repeated events, users with a
single interaction) are repaired and reported in :attr:`InteractionData.notes`.

Example:
    >>> data = prepare_interactions(df, user_col="customer", item_col="sku", timestamp_col="time")
    >>> train, test = temporal_split(data.interactions)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lucid.core.errors import InvalidInputError

CATEGORY_SEPARATORS = re.compile(r"\s*[|;,/]\s*")
MIN_INTERACTIONS = 20


@dataclass
class InteractionData:
    """A validated interaction log with its optional item and user tables.

    Attributes:
        interactions: columns ``user`` and ``item`` (strings), ``rating`` (float, NaN for implicit
            events) and ``timestamp`` (seconds since 1970 as float, NaN when the log has no time),
            one row per (user, item), in the order of the original file.
        items: indexed by item id (string): ``title`` and ``categories`` (names joined by ``|``,
            empty when unknown), for every item of the log.
        users: indexed by user id, any attributes, or ``None``.
        rating_scale: (lowest, highest) rating, or ``None`` for implicit events.
        like_threshold: ratings at or above this count as "liked" in reasons and similarity.
        notes: what was repaired on the way in, in words for the user.
        item_word: what an item is called on screen ("movie", "product", "item").
    """

    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame | None = None
    rating_scale: tuple[float, float] | None = None
    like_threshold: float | None = None
    notes: list[str] = field(default_factory=list)
    item_word: str = "item"

    @property
    def has_ratings(self) -> bool:
        return self.rating_scale is not None

    @property
    def has_time(self) -> bool:
        return bool(self.interactions["timestamp"].notna().all())


def _require_column(df: pd.DataFrame, col: str | None, role: str) -> str:
    """``col``, which must be chosen and be a column of ``df``."""
    if col is None or str(col).strip() == "":
        raise InvalidInputError(f"Choose the {role} column.")
    return _optional_column(df, col, role) or col


def _optional_column(df: pd.DataFrame, col: str | None, role: str) -> str | None:
    """``col`` when it is a column of ``df``; ``None`` when none was chosen."""
    if col is None or str(col).strip() == "":
        return None
    if col not in df.columns:
        listed = ", ".join(map(str, list(df.columns)[:20]))
        raise InvalidInputError(f"The {role} column '{col}' is not in the table. Its columns are: {listed}.")
    return col


def _ids(series: pd.Series) -> pd.Series:
    """Ids as clean strings (``5.0`` read from Excel becomes ``5``)."""
    if pd.api.types.is_float_dtype(series):
        whole = series.dropna()
        if len(whole) and np.all(np.mod(whole, 1) == 0):
            return series.map(lambda v: "" if pd.isna(v) else str(int(v)))
    return series.map(lambda v: "" if pd.isna(v) else str(v).strip())


def parse_timestamps(series: pd.Series) -> pd.Series:
    """Seconds since 1970 (float) from numbers or text in one or several formats.

    Numbers are read as Unix seconds (or milliseconds when they are that large); text may mix ISO
    dates, ``DD/MM/YYYY``-style dates with times, month names and epoch digits.

    Raises:
        InvalidInputError: values that are no recognisable time, with examples.
    """
    if pd.api.types.is_datetime64_any_dtype(series):
        parsed = pd.to_datetime(series, utc=True)
        return (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    if pd.api.types.is_numeric_dtype(series):
        values = series.astype(float)
        if values.abs().max() > 1e11:  # milliseconds
            values = values / 1000.0
        return values
    text = series.astype("string").str.strip()
    digits = text.str.fullmatch(r"\d{9,13}(\.\d+)?").fillna(False).astype(bool)
    out = pd.Series(np.nan, index=series.index, dtype=float)
    if digits.any():
        nums = text[digits].astype(float)
        out[digits] = np.where(nums > 1e11, nums / 1000.0, nums)
    rest = ~digits & text.notna() & (text != "")
    if rest.any():
        parsed = pd.to_datetime(text[rest], format="mixed", errors="coerce", utc=True, dayfirst=False)
        bad = parsed.isna()
        if bad.any():
            examples = ", ".join(f"'{v}'" for v in text[rest][bad].unique()[:3])
            raise InvalidInputError(
                f"{int(bad.sum())} timestamps could not be read as dates or times (e.g. {examples}). "
                "Use ISO dates like 2024-03-01 14:30, or Unix seconds."
            )
        out[rest] = (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    return out


def prepare_interactions(
    df: pd.DataFrame,
    *,
    user_col: str | None,
    item_col: str | None,
    rating_col: str | None = None,
    timestamp_col: str | None = None,
    rating_scale: tuple[float, float] | None = None,
    like_threshold: float | None = None,
    item_word: str = "item",
) -> InteractionData:
    """Validate an interaction log and bring it to the standard columns.

    Args:
        df: the uploaded table.
        user_col: column with user ids.
        item_col: column with item ids.
        rating_col: column with explicit ratings; ``None`` for implicit events.
        timestamp_col: column with event times; ``None`` when there are none (the split is then random).
        rating_scale: the declared (lowest, highest) rating; taken from the data when ``None``.
        like_threshold: ratings at or above it count as liked (default: 70% up the scale).
        item_word: what an item is called on screen.

    Raises:
        InvalidInputError: missing columns, non-numeric ratings, ratings outside the declared scale,
            unreadable timestamps, too little data, or every user with a single interaction.
    """
    user_col = _require_column(df, user_col, "user")
    item_col = _require_column(df, item_col, "item")
    rating_col = _optional_column(df, rating_col, "rating")
    timestamp_col = _optional_column(df, timestamp_col, "timestamp")
    chosen = [c for c in (user_col, item_col, rating_col, timestamp_col) if c is not None]
    if len(set(chosen)) != len(chosen):
        raise InvalidInputError("The user, item, rating and timestamp columns must be different columns.")
    notes: list[str] = []
    out = pd.DataFrame({"user": _ids(df[user_col]), "item": _ids(df[item_col])})
    missing = (out["user"] == "") | (out["item"] == "")
    if missing.all():
        raise InvalidInputError("Every row lacks a user or an item id.")
    if rating_col is not None:
        raw = df[rating_col]
        ratings = pd.to_numeric(raw, errors="coerce")
        bad = ratings.isna() & raw.notna() & (raw.astype("string").str.strip() != "")
        if bad.any():
            examples = ", ".join(f"'{v}'" for v in raw[bad].astype(str).unique()[:3])
            raise InvalidInputError(
                f"The rating column '{rating_col}' has {int(bad.sum())} values that are not numbers "
                f"(e.g. {examples}). Fix them, or leave the rating column out for implicit events."
            )
        if ratings.isna().any():
            raise InvalidInputError(
                f"{int(ratings.isna().sum())} rows have no rating in '{rating_col}'. Fill them in or "
                "leave the rating column out for implicit events."
            )
        if rating_scale is not None:
            lo, hi = float(rating_scale[0]), float(rating_scale[1])
            if not lo < hi:
                raise InvalidInputError("The rating scale's lowest value must be below its highest.")
            outside = (ratings < lo) | (ratings > hi)
            if outside.any():
                examples = ", ".join(f"{v:g}" for v in ratings[outside].unique()[:3])
                raise InvalidInputError(
                    f"{int(outside.sum())} ratings are outside the declared scale {lo:g}-{hi:g} "
                    f"(e.g. {examples}). Correct the scale or the ratings."
                )
        else:
            lo, hi = float(ratings.min()), float(ratings.max())
        out["rating"] = ratings.astype(float)
        if hi > lo:
            scale: tuple[float, float] | None = (lo, hi)
            like = float(like_threshold) if like_threshold is not None else lo + 0.7 * (hi - lo)
        else:
            scale, like = None, None
            notes.append("Every rating has the same value, so the events are treated as implicit.")
            out["rating"] = np.nan
    else:
        out["rating"] = np.nan
        scale, like = None, None
    if timestamp_col is not None:
        out["timestamp"] = parse_timestamps(df[timestamp_col]).astype(float).to_numpy()
        if out["timestamp"].isna().any():
            raise InvalidInputError(
                f"{int(out['timestamp'].isna().sum())} rows have no timestamp in '{timestamp_col}'. "
                "Fill them in or leave the timestamp column out (the hold-out is then random)."
            )
    else:
        out["timestamp"] = np.nan
    if missing.any():
        notes.append(f"{int(missing.sum())} rows without a user or item id were left out.")
        out = out[~missing]
    # Repeated events of one user with one item: keep one row, the latest (its rating wins).
    order = out.sort_values("timestamp", kind="stable") if timestamp_col else out
    duplicated = order.duplicated(["user", "item"], keep="last")
    if duplicated.any():
        n_dup = int(duplicated.sum())
        notes.append(
            f"{n_dup} repeated events (the same user and item more than once) were merged into one; "
            "the latest was kept."
        )
        out = out.loc[order.index[~duplicated.to_numpy()]].sort_index()
    out = out.reset_index(drop=True)
    if len(out) < MIN_INTERACTIONS:
        raise InvalidInputError(
            f"The log has {len(out)} distinct (user, item) events; at least {MIN_INTERACTIONS} are needed."
        )
    per_user = out.groupby("user").size()
    per_item = out.groupby("item").size()
    if (per_user >= 2).sum() < 2:
        raise InvalidInputError(
            "At least two users need two or more interactions each, so that some can be held out to "
            "measure the recommendations. Every user here has a single interaction."
        )
    if per_item.size < 3:
        raise InvalidInputError("The log has fewer than 3 distinct items; there is nothing to recommend.")
    single_users = int((per_user == 1).sum())
    if single_users:
        notes.append(
            f"{single_users} users have a single interaction: they are used for training and get "
            "recommendations, but cannot be part of the held-out evaluation."
        )
    single_items = int((per_item == 1).sum())
    if single_items:
        notes.append(f"{single_items} items have a single interaction, so little is known about them.")
    items = pd.DataFrame(index=pd.Index(sorted(per_item.index), name="item"))
    items["title"] = items.index.astype(str)
    items["categories"] = ""
    return InteractionData(
        interactions=out,
        items=items,
        rating_scale=scale,
        like_threshold=like,
        notes=notes,
        item_word=item_word,
    )


def _indexed_by(table: pd.DataFrame, ids: pd.Series) -> pd.DataFrame:
    """The table indexed by its ids, first row per id (no column is inserted: an upload with many
    columns may be a fragmented frame, which pandas warns about on every insert)."""
    table = table.set_axis(pd.Index(ids.to_numpy(), name="_id"), axis=0)
    return table[~table.index.duplicated(keep="first")]


def attach_item_table(
    data: InteractionData,
    table: pd.DataFrame,
    *,
    id_col: str,
    title_col: str | None = None,
    category_cols: Sequence[str] = (),
) -> InteractionData:
    """Add titles and categories from an item table.

    A category column either holds names (several per cell separated by ``|``, ``;``, ``,`` or
    ``/``) or is a 0/1 flag whose column name is the category (as MovieLens's genre columns).

    Raises:
        InvalidInputError: missing columns, or no item id of the table matches the log.
    """
    id_col = _require_column(table, id_col, "item id")
    title_col = _optional_column(table, title_col, "title")
    for col in category_cols:
        _require_column(table, col, "category")
    table = _indexed_by(table, _ids(table[id_col]))
    known = data.items.index
    matched = known.intersection(table.index)
    if len(matched) == 0:
        examples_log = ", ".join(map(str, known[:3]))
        examples_table = ", ".join(map(str, table.index[:3]))
        raise InvalidInputError(
            f"No item id in the item table's '{id_col}' column matches the log's items "
            f"(log: {examples_log}; table: {examples_table}). Choose the column holding the same ids."
        )
    items = data.items.copy()
    if title_col is not None:
        titles = table[title_col].reindex(items.index)
        items["title"] = titles.where(titles.notna(), items.index.to_series()).astype(str)
    cats: list[list[str]] = [[] for _ in range(len(items))]
    for col in category_cols:
        column = table[col].reindex(items.index)
        numeric = pd.to_numeric(table[col], errors="coerce")
        is_flag = numeric.notna().all() and set(numeric.unique()) <= {0, 1}
        for k, value in enumerate(column):
            if pd.isna(value):
                continue
            if is_flag:
                if float(value) == 1:
                    cats[k].append(str(col))
            else:
                cats[k].extend(p for p in CATEGORY_SEPARATORS.split(str(value)) if p)
    if category_cols:
        items["categories"] = ["|".join(dict.fromkeys(c)) for c in cats]
    notes = list(data.notes)
    unmatched = len(known) - len(matched)
    if unmatched:
        notes.append(f"{unmatched} items of the log are not in the item table; they are shown by id.")
    extra = len(table.index.difference(known))
    if extra:
        notes.append(f"{extra} items of the item table never occur in the log and were left out.")
    return InteractionData(
        data.interactions, items, data.users, data.rating_scale, data.like_threshold, notes, data.item_word
    )


def attach_user_table(data: InteractionData, table: pd.DataFrame, *, id_col: str) -> InteractionData:
    """Add a user table (any attributes, shown beside a user's history).

    Raises:
        InvalidInputError: the id column is missing or matches no user of the log.
    """
    id_col = _require_column(table, id_col, "user id")
    table = _indexed_by(table, _ids(table[id_col]))
    table = table.drop(columns=[id_col])
    table.index.name = "user"
    known = pd.Index(data.interactions["user"].unique())
    if len(known.intersection(table.index)) == 0:
        raise InvalidInputError(
            f"No user id in the user table's '{id_col}' column matches the log's users. "
            "Choose the column holding the same ids."
        )
    return InteractionData(
        data.interactions,
        data.items,
        table.reindex(known).rename_axis("user"),
        data.rating_scale,
        data.like_threshold,
        data.notes,
        data.item_word,
    )


def temporal_split(
    interactions: pd.DataFrame, *, test_fraction: float = 0.2, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out each user's latest interactions (or random ones when there is no time).

    Users with a single interaction stay wholly in training. A user with ``n >= 2`` interactions
    gives ``max(1, round(test_fraction * n))`` of them (at most ``n - 1``) to the test set: the
    latest by timestamp, so nothing a user did after a test interaction is in training.

    Returns:
        (train, test), each a subset of the rows of ``interactions`` with the same columns.
    """
    frame = interactions.reset_index(drop=True)
    has_time = bool(frame["timestamp"].notna().all())
    if has_time:
        key = frame["timestamp"].to_numpy()
    else:
        key = np.random.default_rng(seed).random(len(frame))
    order = np.lexsort((np.arange(len(frame)), key, frame["user"].to_numpy()))
    ranked = frame.iloc[order]
    position = ranked.groupby("user", sort=False).cumcount().to_numpy()
    size = ranked.groupby("user", sort=False)["item"].transform("size").to_numpy()
    n_test = np.where(size >= 2, np.clip(np.rint(test_fraction * size), 1, size - 1), 0)
    is_test = position >= size - n_test
    test_idx = np.sort(ranked.index.to_numpy()[is_test])
    train_idx = np.sort(ranked.index.to_numpy()[~is_test])
    return frame.loc[train_idx].reset_index(drop=True), frame.loc[test_idx].reset_index(drop=True)
