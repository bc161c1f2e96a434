"""ImagePreprocessing: the view and the tensor reproduce timm's own transform."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from PIL import Image

from lucid.imaging.preprocess import ImagePreprocessing


def test_preprocessing_matches_timm_transform(tiny_model):
    prep = ImagePreprocessing.from_model(tiny_model, input_size=(3, 48, 48))
    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 255, (70, 90, 3)).astype(np.uint8))
    view = prep.view(image)
    assert view.shape == (48, 48, 3) and view.dtype == np.uint8
    expected = prep.eval_transform()(image)
    # A read-only view (as numpy gives for a PIL image) converts without torch's warning about
    # non-writable arrays (torch warns once per process, so this comes first), and stays unchanged.
    frozen = view[None].copy()
    frozen.flags.writeable = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = prep.to_tensor(frozen)[0]
    assert [str(w.message) for w in caught] == []
    np.testing.assert_array_equal(frozen[0], view)
    # The split transform (view -> tensor) reproduces timm's own transform up to uint8 rounding.
    assert got.shape == expected.shape
    assert float((got - expected).abs().max()) < 0.02
    # Float views give the same tensor and are not written to either.
    floats = view[None].astype(np.float32)
    torch.testing.assert_close(prep.to_tensor(floats)[0], got)
    np.testing.assert_array_equal(floats[0], view)
