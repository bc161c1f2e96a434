"""Text-classifier building blocks: inference and training batches, padding, the registry of defaults."""

from __future__ import annotations

import numpy as np
import pytest

from lucid.core.errors import ModelNotFoundError
from lucid.domains.nlp.finetune import length_bucketed_batches
from lucid.domains.nlp.model import (
    DEFAULT_MODEL,
    RECIPE_VERSION,
    nlp_registry,
    pad_batch,
    token_budget_batches,
)


def test_token_budget_batches_cover_every_row_within_budget():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 128, size=500)
    batches = token_budget_batches(lengths, max_tokens=2048, max_batch=64)
    seen = np.sort(np.concatenate(batches))
    np.testing.assert_array_equal(seen, np.arange(500))
    for batch in batches:
        assert len(batch) <= 64
        assert len(batch) == 1 or len(batch) * lengths[batch].max() <= 2048
    # sorted by length: padding is small
    padded = sum(len(b) * lengths[b].max() for b in batches)
    assert padded < 1.1 * lengths.sum()


def test_length_buckets_shuffle_batches_but_group_lengths():
    lengths = np.arange(320)
    batches = length_bucketed_batches(lengths, 16, np.random.default_rng(0))
    assert sorted(np.concatenate(batches).tolist()) == list(range(320))
    spans = [lengths[b].max() - lengths[b].min() for b in batches]
    assert max(spans) < 40  # similar lengths together
    firsts = [int(b.min()) for b in batches]
    assert firsts != sorted(firsts)  # batch order is shuffled


def test_pad_batch():
    ids, mask = pad_batch([[1, 2, 3], [4]], pad_id=0)
    assert ids.tolist() == [[1, 2, 3], [4, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def test_registry_lists_the_default_and_refuses_unknown_names():
    assert nlp_registry.names() == [DEFAULT_MODEL]
    spec = nlp_registry.get(DEFAULT_MODEL)
    assert "Apache-2.0" in spec.licence and spec.labels == ("negative", "positive")
    assert spec.extra["recipe_version"] == RECIPE_VERSION
    with pytest.raises(ModelNotFoundError, match="review_sentiment"):
        nlp_registry.get("sentiment_xl")
