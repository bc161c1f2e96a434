"""Synthetic labelled images for the image-machinery tests: colour patches, PNG bytes and zips of them."""

from __future__ import annotations

import io
import zipfile

import numpy as np
from PIL import Image

from lucid.imaging.datasets import LabelledImages


def png(arr: np.ndarray) -> bytes:
    """An H x W x 3 uint8 array as PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(arr).save(buffer, format="PNG")
    return buffer.getvalue()


def zip_of(files: dict[str, bytes]) -> bytes:
    """A zip archive holding ``files`` (path inside the archive -> bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def colour(channel: int, seed: int) -> np.ndarray:
    """A 24 x 24 noisy image dominated by one colour channel (0 red, 2 blue)."""
    arr = np.random.default_rng(seed).integers(0, 60, (24, 24, 3)).astype(np.uint8)
    arr[..., channel] += 180
    return arr


def colour_set(n: int = 24) -> LabelledImages:
    """``n`` images labelled ``red`` and ``blue``, alternating."""
    images, labels = [], []
    for i in range(n):
        channel = 0 if i % 2 else 2
        images.append(Image.fromarray(colour(channel, 100 + i)))
        labels.append("red" if channel == 0 else "blue")
    return LabelledImages(images, labels, [f"{i}.png" for i in range(n)])
