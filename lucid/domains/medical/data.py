"""Labelled scans to train and evaluate on: a zip of class folders, windowed as the viewer shows each
scan, and a patient-level split.

* A zip of class folders of DICOM or PNG files is read with each scan windowed exactly as the
  viewer shows it; volumes where one slice is expected and archives that mix modalities are refused.
* When the DICOM files carry patient IDs, every patient lies wholly in train, validation or test
  (stratified by class), so no patient leaks between them.

Example:
    >>> labelled = labelled_scans_from_zip(zip_bytes, window="file")
    >>> labelled.counts(), labelled.group_kind
    ({'normal': 15, 'tumour': 15}, 'patient')
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.model_selection import StratifiedGroupKFold

from lucid.core.archives import read_zip
from lucid.core.errors import InvalidInputError
from lucid.domains.medical.reading import load_scan
from lucid.domains.medical.windowing import render_for_model
from lucid.imaging.datasets import LabelledImages, load_voc_crops

MIN_PER_CLASS = 4
STORED_SIDE = 512


@dataclass
class LabelledScans:
    """Windowed scans with labels, in the shared :class:`lucid.imaging.datasets.LabelledImages` form, plus
    the patient (or source image) each comes from and the split derived from them.

    Attributes:
        data: the images, labels and (patient-level) split.
        groups: one patient key (hashed) or source name per image.
        group_kind: ``"patient"``, ``"source image"`` or ``"file"`` (no grouping information).
        modality: the single modality of the set (``CT``, ``MR``, ``photo``, ...).
        window: how the images were windowed.
    """

    data: LabelledImages
    groups: list[str]
    group_kind: str
    modality: str
    window: str

    def counts(self) -> dict[str, int]:
        return self.data.class_counts()


def _shrink(image: np.ndarray, side: int = STORED_SIDE) -> Image.Image:
    pil = Image.fromarray(image)
    if max(pil.size) > side:
        scale = side / max(pil.size)
        pil = pil.resize(
            (max(1, round(pil.width * scale)), max(1, round(pil.height * scale))), Image.Resampling.BILINEAR
        )
    return pil


def labelled_scans_from_zip(data: bytes, *, window: str = "file", seed: int = 0) -> LabelledScans:
    """Read a zip of class folders (``tumour/001.dcm``, ``normal/a.png``) into windowed images.

    Raises:
        InvalidInputError: no class folders, a file that is not a readable scan (named), a volume
            where one slice is expected, a mix of modalities, fewer than two classes or too few
            images per class.
    """
    contents = read_zip(data)
    images, labels, names, modalities, keys = [], [], [], [], []
    for member in contents.members:
        if len(member.parts) < 2:
            continue
        try:
            scan = load_scan(member.data, member.name)
            image = render_for_model(scan, window)
        except InvalidInputError as exc:
            raise InvalidInputError(f"In '{member.path}': {exc}") from exc
        images.append(_shrink(image))
        labels.append(member.parts[-2])
        names.append(member.path)
        modalities.append(scan.modality)
        keys.append(scan.patient_key)
    if not images:
        raise InvalidInputError("The archive has no images inside class folders (e.g. 'tumour/scan1.dcm').")
    kinds = Counter(modalities)
    if len(kinds) > 1:
        listed = ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items()))
        raise InvalidInputError(f"The archive mixes modalities ({listed}); train one model per modality.")
    counts = Counter(labels)
    if len(counts) < 2:
        raise InvalidInputError("Training needs at least two class folders.")
    small = sorted(c for c, n in counts.items() if n < MIN_PER_CLASS)
    if small:
        raise InvalidInputError(
            f"Each class needs at least {MIN_PER_CLASS} images; too few in: {', '.join(small)}."
        )
    if all(keys):
        groups, group_kind = [str(k) for k in keys], "patient"
    else:
        groups, group_kind = list(names), "file"
    labelled = LabelledImages(images=images, labels=labels, names=names)
    labelled.split = group_split(labels, groups, seed=seed)
    return LabelledScans(labelled, groups, group_kind, modalities[0], window)


def bccd_cell_crops(
    root: str | Path, *, per_class: dict[str, int] | None = None, margin: float = 0.1, seed: int = 0
) -> LabelledScans:
    """BCCD blood-cell crops (via :func:`lucid.imaging.datasets.load_voc_crops`) with BCCD's own image-level
    train/val/test lists, grouped by source smear so no smear straddles two splits.

    Args:
        root: the ``bccd`` folder (holding ``BCCD/Annotations`` ...) or the VOC root itself.
        per_class: at most this many crops per class in each split, e.g. ``{"train": 60, "test": 40}``.
    """
    root = Path(root)
    voc = root / "BCCD" if (root / "BCCD").is_dir() else root
    merged = LabelledImages()
    splits: list[str] = []
    for split in ("train", "val", "test"):
        cap = (per_class or {}).get(split)
        part = load_voc_crops(voc, split, max_per_class=cap, margin=margin, seed=seed)
        merged.images += part.images
        merged.labels += part.labels
        merged.names += part.names
        splits += [split] * len(part)
    merged.split = splits
    groups = [name.split(":", 1)[0] for name in merged.names]
    return LabelledScans(merged, groups, "source image", "photo", "none (colour photographs)")


def group_split(
    labels: list[str], groups: list[str], *, test_size: float = 0.2, val_size: float = 0.15, seed: int = 0
) -> list[str]:
    """``train``/``val``/``test`` per item, stratified by label, with every group in one split only."""
    y = np.unique(np.asarray(labels), return_inverse=True)[1]
    codes = np.unique(np.asarray(groups), return_inverse=True)[1]
    result = np.array(["train"] * len(y), dtype=object)

    def carve(mask: np.ndarray, fraction: float, tag: str) -> None:
        idx = np.flatnonzero(mask)
        n_groups = len(np.unique(codes[idx]))
        if n_groups < 2:
            return
        folds = max(2, min(int(round(1 / fraction)), n_groups, min(Counter(y[idx].tolist()).values())))
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        _, held = next(splitter.split(idx, y[idx], codes[idx]))
        result[idx[held]] = tag

    carve(np.ones(len(y), dtype=bool), test_size, "test")
    carve(result == "train", val_size / (1 - test_size), "val")
    return [str(s) for s in result]
