"""The word explainer's parts: the masker (whole words hidden, a run of hidden pieces read as one [MASK], rows
kept equal length) and the hierarchy over neighbouring words."""

from __future__ import annotations

import numpy as np

from lucid.domains.nlp.explain import WordMasker, WordTokens, adjacent_word_tree

MASK, PAD = 103, 0


def _tokens() -> WordTokens:
    # [CLS] great fab ##ric , but tiny [SEP]: five words, "fabric" in two pieces
    ids = np.array([101, 2307, 6904, 7277, 1010, 2021, 4714, 102])
    positions = [np.array([1]), np.array([2, 3]), np.array([4]), np.array([5]), np.array([6])]
    words = ["great ", "fabric", ", ", "but ", "tiny"]
    return WordTokens("great fabric, but tiny", ids, words, positions, 22, False)


def test_hidden_words_become_one_mask_per_run_and_rows_keep_their_length():
    masker = WordMasker(_tokens(), MASK, PAD)
    keep_all = masker(np.ones(5, dtype=bool), np.arange(5))[0]
    np.testing.assert_array_equal(keep_all, _tokens().ids)
    # hide "fabric" and "," (neighbours: three pieces -> one [MASK]), keep the rest
    row = masker(np.array([True, False, False, True, True]), np.arange(5))[0]
    np.testing.assert_array_equal(row, [101, 2307, MASK, 2021, 4714, 102, PAD, PAD])
    # hide "great" and "but" (not neighbours): two separate masks
    row = masker(np.array([False, True, True, False, True]), np.arange(5))[0]
    np.testing.assert_array_equal(row, [101, MASK, 6904, 7277, 1010, MASK, 4714, 102])
    # everything hidden: [CLS] [MASK] [SEP], padded
    row = masker(np.zeros(5, dtype=bool), np.arange(5))[0]
    np.testing.assert_array_equal(row, [101, MASK, 102, PAD, PAD, PAD, PAD, PAD])


def test_word_tree_is_a_full_binary_hierarchy():
    for n in (2, 3, 7, 16):
        tree = adjacent_word_tree(n)
        assert tree.shape == (n - 1, 4)
        assert tree[-1, 3] == n
        leaves = {int(v) for v in tree[:, :2].ravel() if v < n}
        assert leaves == set(range(n))
