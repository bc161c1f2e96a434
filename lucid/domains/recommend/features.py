"""Interpretable features of (user, candidate item) pairs for the ranker, and the plain-language
reasons built from their SHAP values.

An :class:`InteractionIndex` summarises the interactions a model may know about (the training
part during evaluation, everything when serving): each user's history in time order, item
popularity and trend, item-item similarity (cosine over who interacted with what), category
shares. :func:`build_features` turns candidates into one row of features per (user, item), with
the evidence the reasons quote (which liked item is most similar, which category matches).

Example:
    >>> index = InteractionIndex(frame, user_ids, item_ids, categories, like_threshold=4)
    >>> feats = build_features(index, [index.profile(0)], np.array([[5, 9, 2]]))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

DENSE_SIMILARITY_MAX_ITEMS = 6000
SIMILARITY_SHRINK = 10.0
RECENT_ITEMS = 10
TREND_DAYS = 28
MAX_TREND_CELLS = 20_000_000  # items x time buckets of the trend table
DAY = 86400.0

FEATURE_LABELS = {
    "cf_rank": "rank by collaborative filtering",
    "similarity_to_liked": "similarity to an item you liked",
    "similarity_to_recent": "similarity to your recent items",
    "category_affinity": "your affinity to its category",
    "popularity": "popularity (users who have it)",
    "trend": f"trend (interactions in the {TREND_DAYS} days before your last visit)",
    "item_age_days": "days since it first appeared",
    "avg_rating": "average rating by others",
    "user_activity": "your activity (items in your history)",
}


@dataclass(frozen=True)
class Profile:
    """What is known about one user: history item indices in time order, their ratings, last time.

    For a new user ``items`` need not be in time order; their most recent items are then arbitrary.
    """

    items: np.ndarray
    ratings: np.ndarray
    last_time: float
    liked_columns: np.ndarray  # positions in ``items`` of the liked items

    @property
    def liked(self) -> np.ndarray:
        return self.items[self.liked_columns]


class InteractionIndex:
    """Fast look-ups over a set of interactions, in the index space of a model's users and items.

    Args:
        frame: columns ``user``, ``item`` (ids), ``rating``, ``timestamp``.
        user_ids: every user id the model knows (position = index).
        item_ids: every item id of the catalogue (position = index).
        item_categories: one ``|``-joined category string per item of ``item_ids`` (may be empty).
        like_threshold: ratings at or above it are "liked" (``None``: every interaction is).
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        user_ids: Sequence[str],
        item_ids: Sequence[str],
        item_categories: Sequence[str],
        like_threshold: float | None,
    ) -> None:
        self.user_ids = list(user_ids)
        self.item_ids = list(item_ids)
        self.n_users, self.n_items = len(self.user_ids), len(self.item_ids)
        self.like_threshold = like_threshold
        user_pos = pd.Index(self.user_ids)
        item_pos = pd.Index(self.item_ids)
        u = user_pos.get_indexer(frame["user"])
        i = item_pos.get_indexer(frame["item"])
        if (u < 0).any() or (i < 0).any():
            raise ValueError("interactions refer to users or items outside the model's catalogue")
        ratings = frame["rating"].to_numpy(dtype=np.float64)
        times = frame["timestamp"].to_numpy(dtype=np.float64)
        self.has_ratings = bool(np.isfinite(ratings).all()) and like_threshold is not None
        self.has_time = bool(np.isfinite(times).all()) and len(times) > 0
        tie = np.arange(len(frame))
        order = np.lexsort((tie, times if self.has_time else tie, u))
        self._u, self._i, self._r, self._t = u[order], i[order], ratings[order], times[order]
        self.indptr = np.searchsorted(self._u, np.arange(self.n_users + 1))
        self.matrix = sp.csr_matrix(
            (np.ones(len(u), dtype=np.float32), (u, i)), shape=(self.n_users, self.n_items)
        )
        self.matrix.sum_duplicates()
        self.matrix.data[:] = 1.0
        self.item_users = np.asarray(self.matrix.sum(axis=0)).ravel()
        self.user_counts = np.diff(self.indptr)
        self.global_last_time = float(np.max(times)) if self.has_time else 0.0
        self._build_similarity()
        self._build_categories(item_categories)
        if self.has_ratings:
            sums = np.bincount(i, weights=ratings, minlength=self.n_items)
            mean = float(np.mean(ratings))
            # Shrink towards the global mean so an item with one 5-star rating is not "best rated".
            self.item_avg_rating = (sums + 5 * mean) / (self.item_users + 5)
        if self.has_time:
            self.t0 = float(np.min(times))
            first = np.full(self.n_items, np.inf)
            np.minimum.at(first, i, times)
            self.item_first_time = first
            # Time buckets of one day, widened for long logs so the count table stays small.
            span_days = (float(np.max(times)) - self.t0) / DAY + 1
            self.bucket = DAY * max(1, int(np.ceil(span_days * self.n_items / MAX_TREND_CELLS)))
            days = ((times - self.t0) // self.bucket).astype(np.int64)
            self.n_days = int(days.max()) + 1
            self.trend_buckets = max(1, int(round(TREND_DAYS * DAY / self.bucket)))
            counts = sp.csr_matrix(
                (np.ones(len(i), dtype=np.float32), (i, days)), shape=(self.n_items, self.n_days)
            ).toarray()
            self._day_cumsum = np.concatenate(
                [np.zeros((self.n_items, 1), dtype=np.float32), np.cumsum(counts, axis=1)], axis=1
            )

    # ------------------------------------------------------------------------------------------
    def _build_similarity(self) -> None:
        x = self.matrix
        cooc = (x.T @ x).tocsr().astype(np.float32)
        norms = np.sqrt(self.item_users).astype(np.float32)
        self.dense_similarity = self.n_items <= DENSE_SIMILARITY_MAX_ITEMS
        if self.dense_similarity:
            sim = cooc.toarray()
            sim /= np.outer(norms, norms) + SIMILARITY_SHRINK
            np.fill_diagonal(sim, 0.0)
            self.similarity = sim
            self.cooccurrence = cooc
        else:
            coo = cooc.tocoo()
            values = coo.data / (norms[coo.row] * norms[coo.col] + SIMILARITY_SHRINK)
            values[coo.row == coo.col] = 0.0
            self.similarity = sp.csr_matrix((values, (coo.row, coo.col)), shape=cooc.shape)
            self.cooccurrence = cooc

    def similarity_block(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Similarities between the items ``rows`` and ``cols`` as a dense array."""
        if self.dense_similarity:
            return self.similarity[np.ix_(rows, cols)]
        return self.similarity[rows][:, cols].toarray()

    def _build_categories(self, item_categories: Sequence[str]) -> None:
        names = sorted({c for cats in item_categories for c in str(cats).split("|") if c})
        self.category_names = names
        position = {c: k for k, c in enumerate(names)}
        flags = np.zeros((self.n_items, len(names)), dtype=np.float32)
        for k, cats in enumerate(item_categories):
            for c in str(cats).split("|"):
                if c:
                    flags[k, position[c]] = 1.0
        self.item_category_flags = flags

    @property
    def has_categories(self) -> bool:
        return len(self.category_names) > 0

    # ------------------------------------------------------------------------------------------
    def profile(self, user: int) -> Profile:
        """The known history of user ``user`` (an index)."""
        lo, hi = self.indptr[user], self.indptr[user + 1]
        items, ratings = self._i[lo:hi], self._r[lo:hi]
        last = float(self._t[hi - 1]) if self.has_time and hi > lo else self.global_last_time
        return Profile(items, ratings, last, self._liked(ratings))

    def new_profile(
        self, items: Sequence[int] | np.ndarray, ratings: Sequence[float] | None = None
    ) -> Profile:
        """A profile for a user who is not in the data (cold start), active now."""
        idx = np.asarray(items, dtype=np.int64)
        values = np.asarray(ratings, dtype=np.float64) if ratings is not None else np.full(len(idx), np.nan)
        return Profile(idx, values, self.global_last_time, self._liked(values))

    def _liked(self, ratings: np.ndarray) -> np.ndarray:
        """Positions of the liked items (every item when nothing is rated high enough)."""
        if self.has_ratings and self.like_threshold is not None and np.isfinite(ratings).all():
            liked = np.flatnonzero(ratings >= self.like_threshold)
            if len(liked):
                return liked
        return np.arange(len(ratings))

    def seen_mask(self, users: np.ndarray) -> sp.csr_matrix:
        """Rows of the user-item matrix for ``users`` (1 where the user has the item)."""
        return self.matrix[users]

    def popularity_ranking(self) -> np.ndarray:
        """Item indices from the most to the least popular (ties by index)."""
        return np.lexsort((np.arange(self.n_items), -self.item_users))

    def feature_names(self) -> list[str]:
        names = ["cf_rank", "similarity_to_liked", "similarity_to_recent"]
        if self.has_categories:
            names.append("category_affinity")
        names.append("popularity")
        if self.has_time:
            names += ["trend", "item_age_days"]
        if self.has_ratings:
            names.append("avg_rating")
        names.append("user_activity")
        return names


@dataclass
class CandidateFeatures:
    """Features of (user, candidate) rows, one block of ``k`` rows per user, with reason evidence."""

    values: np.ndarray  # (rows, features) float32
    feature_names: list[str]
    items: np.ndarray  # (rows,) candidate item index
    user_rows: np.ndarray  # (rows,) position of the user in the list given to build_features
    best_liked: np.ndarray  # (rows,) index of the most similar liked item, -1 if none
    best_liked_rating: np.ndarray  # (rows,) its rating (NaN if implicit)
    best_recent: np.ndarray  # (rows,) index of the most similar recent item, -1 if none
    best_category: np.ndarray  # (rows,) index of the best-matching category, -1 if none


def build_features(
    index: InteractionIndex, profiles: Sequence[Profile], candidates: np.ndarray
) -> CandidateFeatures:
    """Features of every (profile, candidate) pair.

    Args:
        index: the interactions the features may use (never the held-out ones).
        profiles: one per user, in the order of ``candidates``' rows.
        candidates: (users, k) item indices, ordered by the candidate generator (best first).
    """
    candidates = np.asarray(candidates, dtype=np.int64)
    n_users, k = candidates.shape
    names = index.feature_names()
    rows = n_users * k
    cols = {name: np.zeros(rows, dtype=np.float32) for name in names}
    best_liked = np.full(rows, -1, dtype=np.int64)
    best_liked_rating = np.full(rows, np.nan, dtype=np.float64)
    best_recent = np.full(rows, -1, dtype=np.int64)
    best_category = np.full(rows, -1, dtype=np.int64)
    cf_rank = np.tile(np.arange(1, k + 1, dtype=np.float32), n_users)
    arange_k = np.arange(k)
    for row, (profile, cands) in enumerate(zip(profiles, candidates, strict=True)):
        sl = slice(row * k, (row + 1) * k)
        if len(profile.items):
            # One look-up over the whole history; liked and recent items are columns of it.
            block_all = index.similarity_block(cands, profile.items)
            liked_cols = profile.liked_columns
            block = block_all[:, liked_cols]
            arg = block.argmax(axis=1)
            cols["similarity_to_liked"][sl] = block[arange_k, arg]
            best_liked[sl] = profile.items[liked_cols][arg]
            best_liked_rating[sl] = profile.ratings[liked_cols][arg]
            recent = block_all[:, -RECENT_ITEMS:]
            cols["similarity_to_recent"][sl] = recent.mean(axis=1)
            best_recent[sl] = profile.items[-RECENT_ITEMS:][recent.argmax(axis=1)]
        if index.has_categories and len(profile.items):
            share = index.item_category_flags[profile.items].mean(axis=0)
            match = index.item_category_flags[cands] * share
            arg = match.argmax(axis=1)
            best = match[arange_k, arg]
            cols["category_affinity"][sl] = best
            best_category[sl] = np.where(best > 0, arg, -1)
        if index.has_time:
            day = int((profile.last_time - index.t0) // index.bucket)
            hi = min(max(day + 1, 0), index.n_days)
            lo = min(max(day + 1 - index.trend_buckets, 0), index.n_days)
            cols["trend"][sl] = index._day_cumsum[cands, hi] - index._day_cumsum[cands, lo]
            first = index.item_first_time[cands]
            # An item no one has chosen yet has no age: missing, which the ranker handles natively.
            cols["item_age_days"][sl] = np.where(
                np.isfinite(first), (profile.last_time - first) / DAY, np.nan
            )
        cols["user_activity"][sl] = len(profile.items)
    cols["cf_rank"][:] = cf_rank
    flat = candidates.reshape(-1)
    cols["popularity"][:] = index.item_users[flat]
    if index.has_ratings:
        cols["avg_rating"][:] = index.item_avg_rating[flat]
    values = np.column_stack([cols[n] for n in names]).astype(np.float32)
    return CandidateFeatures(
        values=values,
        feature_names=names,
        items=flat,
        user_rows=np.repeat(np.arange(n_users), k),
        best_liked=best_liked,
        best_liked_rating=best_liked_rating,
        best_recent=best_recent,
        best_category=best_category,
    )


# ----------------------------------------------------------------------------------------------
# Reasons in plain language
# ----------------------------------------------------------------------------------------------


def _rating_text(rating: float, scale: tuple[float, float] | None) -> str:
    if scale is None or not np.isfinite(rating):
        return ""
    return f" {rating:g}/{scale[1]:g}"


def reason_for_feature(
    feature: str,
    value: float,
    *,
    row: int,
    feats: CandidateFeatures,
    index: InteractionIndex,
    titles: Sequence[str],
    rating_scale: tuple[float, float] | None,
    item_word: str,
) -> str:
    """One plain-language phrase saying why ``feature`` raised this candidate's score."""
    items_word = item_word + "s"
    if feature == "similarity_to_liked" and feats.best_liked[row] >= 0:
        title = titles[feats.best_liked[row]]
        rating = feats.best_liked_rating[row]
        if np.isfinite(rating) and rating_scale is not None:
            return f"because you rated {title}{_rating_text(rating, rating_scale)}"
        return f"because you chose {title}"
    if feature == "similarity_to_recent" and feats.best_recent[row] >= 0:
        return f"similar to what you picked recently, such as {titles[feats.best_recent[row]]}"
    if feature == "category_affinity" and feats.best_category[row] >= 0:
        category = index.category_names[feats.best_category[row]]
        verb = "watch" if item_word == "movie" else "choose"
        return f"you {verb} a lot of {category} ({value:.0%} of your {items_word})"
    if feature == "cf_rank":
        return f"people with tastes like yours chose it (collaborative rank #{value:.0f})"
    if feature == "popularity":
        return f"popular: {value:,.0f} users have it"
    if feature == "trend":
        return f"trending: {value:,.0f} picks in the {TREND_DAYS} days before your last visit"
    if feature == "item_age_days":
        return (
            "new in the catalogue"
            if not np.isfinite(value) or value < 60
            else f"a well-established {item_word}"
        )
    if feature == "avg_rating":
        scale = f"/{rating_scale[1]:g}" if rating_scale else ""
        return f"highly rated by others ({value:.1f}{scale} on average)"
    if feature == "user_activity":
        return f"fits users with {value:,.0f} {items_word} in their history"
    return FEATURE_LABELS.get(feature, feature)


def reasons_from_shap(
    shap_row: np.ndarray,
    *,
    row: int,
    feats: CandidateFeatures,
    index: InteractionIndex,
    titles: Sequence[str],
    rating_scale: tuple[float, float] | None,
    item_word: str,
    max_reasons: int = 2,
) -> tuple[str, list[str]]:
    """The reason text for one recommended item and the features it quotes.

    Only features whose SHAP value is positive (they raised the score) are quoted, strongest
    first; the user-level activity feature is quoted only when nothing item-specific helped.
    """
    positive = [j for j in np.argsort(-shap_row, kind="stable") if shap_row[j] > 0]
    specific = [j for j in positive if feats.feature_names[j] != "user_activity"]
    chosen = (specific or positive)[:max_reasons]
    if not chosen:
        return "close to your overall profile, with no single strong signal", []
    phrases = [
        reason_for_feature(
            feats.feature_names[j],
            float(feats.values[row, j]),
            row=row,
            feats=feats,
            index=index,
            titles=titles,
            rating_scale=rating_scale,
            item_word=item_word,
        )
        for j in chosen
    ]
    text = "; ".join(phrases)
    return text[0].upper() + text[1:], [feats.feature_names[j] for j in chosen]
