"""Training checks of the review-sentiment domain: which label columns can train a classifier."""

from __future__ import annotations

import pytest

from lucid.core.errors import InvalidInputError
from lucid.domains.nlp.training import check_labels


def test_label_columns_that_cannot_train_are_refused():
    with pytest.raises(InvalidInputError, match="only one class"):
        check_labels(["pos"] * 20)
    with pytest.raises(InvalidInputError, match="3,000 distinct values"):
        check_labels([f"id-{i}" for i in range(3000)])
    with pytest.raises(InvalidInputError, match="at least 4 texts"):
        check_labels(["a"] * 10 + ["b"] * 2)
    assert check_labels(["b", "a", "c", "a"] * 4) == ["a", "b", "c"]
