"""Labelled image sets from zips (class folders, CSV labels), refusals, trainability checks and splits."""

from __future__ import annotations

import numpy as np
import pytest

from lucid.core.errors import InvalidInputError, TrainingError
from lucid.imaging.datasets import check_trainable, labelled_images_from_zip, stratified_split
from tests.imaging.images import colour, png, zip_of


def test_zip_of_class_folders_nested_hidden_and_bad_files():
    good = png(colour(0, 0))
    files = {
        "set/train/red/a.png": good,
        "set/train/blue/b.png": png(colour(2, 1)),
        "set/test/red/c.png": good,
        "set/test/blue/d.png": png(colour(2, 2)),
        "set/train/red/.hidden.png": good,
        "__MACOSX/set/train/red/._a.png": b"junk",
        "set/train/red/notes.docx": b"not an image",
        "set/train/red/cut.png": good[:60],
        "set/train/red/dot.png": png(np.zeros((1, 1, 3), np.uint8)),
        "loose.png": good,
    }
    data = labelled_images_from_zip(zip_of(files))
    assert sorted(data.labels) == ["blue", "blue", "red", "red"]
    assert data.split is not None and sorted(data.split) == ["test", "test", "train", "train"]
    joined = " | ".join(data.skipped)
    for fragment in ("hidden", "notes.docx", "cut.png", "dot.png", "loose.png"):
        assert fragment in joined
    assert "truncated or corrupt" in joined and "1x1" in joined


def test_zip_with_csv_labels():
    files = {
        "imgs/1.png": png(colour(0, 3)),
        "imgs/2.png": png(colour(2, 4)),
        "labels.csv": b"file,label\nimgs/1.png,red\n2.png,blue\nmissing.png,red\n",
    }
    data = labelled_images_from_zip(zip_of(files))
    assert dict(zip(data.names, data.labels, strict=True)) == {"imgs/1.png": "red", "imgs/2.png": "blue"}
    assert any("missing.png" in s for s in data.skipped)


def test_zip_refusals():
    with pytest.raises(InvalidInputError, match="unsafe path"):
        labelled_images_from_zip(zip_of({"../evil/a.png": png(colour(0, 0))}))
    with pytest.raises(InvalidInputError, match="not a valid zip"):
        labelled_images_from_zip(b"PK\x03\x04 not really a zip")
    # Thousands of tiny files: every one is refused on its header, the whole answer is one clear message.
    tiny = png(np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(InvalidInputError, match="No labelled images"):
        labelled_images_from_zip(zip_of({f"c/{i}.png": tiny for i in range(2000)}))


def test_trainable_checks_and_split():
    with pytest.raises(TrainingError, match="only one"):
        check_trainable(["cat"] * 10)
    with pytest.raises(TrainingError, match="'dog' \\(1 image\\)"):
        check_trainable(["cat"] * 10 + ["dog"])
    labels = ["a"] * 40 + ["b"] * 20 + ["c"] * 3
    split = stratified_split(labels, val_fraction=0.2, test_fraction=0.2, seed=0)
    arr = np.asarray(labels)
    for cls in ("a", "b", "c"):
        parts = {p: int(((arr == cls) & (split == p)).sum()) for p in ("train", "val", "test")}
        assert min(parts.values()) >= 1
    assert int(((arr == "a") & (split == "test")).sum()) == 8
