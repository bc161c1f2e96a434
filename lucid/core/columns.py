"""Finding the usual columns of an uploaded table by name, the same way on a page and in the CLI.

Example:
    >>> find_column(["userId", "movieId", "rating"], USER_COLUMNS)
    'userId'
"""

from __future__ import annotations

import re
from collections.abc import Sequence

USER_COLUMNS = ("user", "user_id", "customer", "customer_id", "client", "client_id", "member", "visitor")
ITEM_COLUMNS = ("item", "item_id", "product", "product_id", "movie", "movie_id", "sku", "article")
RATING_COLUMNS = ("rating", "stars", "score")
TIME_COLUMNS = ("timestamp", "time", "date", "datetime", "event_time")


def _key(name: object) -> str:
    return re.sub(r"[\s_\-]+", "", str(name).lower())


def find_column(columns: Sequence[object], candidates: Sequence[str]) -> str | None:
    """The first of ``columns`` whose name matches a candidate, ignoring case, spaces, '_' and '-'.

    Candidates are tried in order, so an earlier candidate wins over a later one.
    """
    keys = [_key(c) for c in columns]
    for candidate in candidates:
        wanted = _key(candidate)
        if wanted in keys:
            return str(columns[keys.index(wanted)])
    return None
