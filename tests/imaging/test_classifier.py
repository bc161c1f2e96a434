"""ImageClassifier: batched prediction equals one image at a time; top-k ranking."""

from __future__ import annotations

import numpy as np
from PIL import Image

from lucid.imaging.classifier import ImageClassifier
from lucid.imaging.preprocess import ImagePreprocessing


def test_classifier_batches_equal_single_images(tiny_model):
    prep = ImagePreprocessing.from_model(tiny_model, input_size=(3, 40, 40))
    clf = ImageClassifier(tiny_model, prep, ["a", "b", "c"], device="cpu", batch_size=3)
    rng = np.random.default_rng(2)
    images = [Image.fromarray(rng.integers(0, 255, (50, 60, 3)).astype(np.uint8)) for _ in range(5)]
    batched = clf.predict_images(images)
    single = np.concatenate([clf.predict_images([im]) for im in images])
    assert batched.shape == (5, 3)
    np.testing.assert_allclose(batched.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(batched, single, atol=1e-5)
    top = clf.top_k(images[:1], k=2)[0]
    assert [t[0] for t in top] == list(np.argsort(-batched[0])[:2])
