"""Labelled image sets in memory: read from a zip or a folder (class folders or a CSV of labels), or
cropped from a Pascal VOC set; checks that a set can be trained on, and stratified splits.

Example:
    >>> data = labelled_images_from_zip(zip_bytes)       # class folders, or a CSV of file -> label
    >>> data.class_counts(), data.skipped
    >>> split = stratified_split(data.labels, val_fraction=0.15, test_fraction=0.15)
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from lucid.core.archives import read_zip
from lucid.core.data import IMAGE_EXTENSIONS, read_image, read_table
from lucid.core.errors import InvalidInputError, TrainingError
from lucid.core.store import data_hash

SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val"}
SPLIT_NAMES |= {"test": "test", "testing": "test"}
MIN_IMAGES_PER_CLASS = 3


@dataclass
class LabelledImages:
    """Images with a class label each (and optionally a given train/val/test split), in memory.

    Attributes:
        images: RGB PIL images.
        labels: one class name per image.
        names: where each image came from (file name inside the archive, or a description).
        split: ``"train"``, ``"val"`` or ``"test"`` per image when the data came split, else ``None``.
        skipped: files that were left out, each with the reason.
    """

    images: list[Image.Image] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    split: list[str] | None = None
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    def class_counts(self) -> dict[str, int]:
        """Images per class, classes sorted by name."""
        return dict(sorted(Counter(self.labels).items()))

    def subset(self, indices: Sequence[int]) -> LabelledImages:
        """The images at ``indices`` (shares the image objects)."""
        idx = list(indices)
        return LabelledImages(
            [self.images[i] for i in idx],
            [self.labels[i] for i in idx],
            [self.names[i] for i in idx],
            [self.split[i] for i in idx] if self.split is not None else None,
            list(self.skipped),
        )

    def fingerprint(self) -> str:
        """A short hash of the labels and pixel data (for the model's metadata)."""
        parts: list[bytes | str] = ["|".join(self.labels)]
        parts += [np.asarray(im.resize((16, 16))).tobytes() for im in self.images]
        return data_hash(*parts)


ImageDecoder = Callable[[bytes, str], Image.Image]


def _default_decoder(data: bytes, name: str) -> Image.Image:
    return read_image(data, name)


def _find_column(columns: Sequence[str], candidates: Sequence[str]) -> str | None:
    lowered = {c.lower().strip(): c for c in columns}
    return next((lowered[c] for c in candidates if c in lowered), None)


def labelled_images_from_zip(
    data: bytes,
    *,
    decode: ImageDecoder = _default_decoder,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    max_skipped_listed: int = 50,
) -> LabelledImages:
    """Read a labelled image set from a zip archive.

    Two layouts are understood:

    * class folders: each image's label is the name of the folder it sits in
      (``cats/a.jpg``, ``data/train/dogs/b.png``); a folder named ``train``, ``val``/``validation``
      or ``test`` above the class folder gives the split;
    * a CSV anywhere in the archive with a file-name column (``file``, ``filename``, ``image``,
      ``path``) and a label column (``label``, ``class``, ``category``), optionally ``split``;
      file names are matched by path or by base name.

    Hidden files, files that are not images and images that cannot be decoded (truncated, too small,
    decompression bombs) are skipped and listed in ``skipped`` with the reason.

    Args:
        data: the archive's bytes (read with the safety limits of :func:`lucid.core.archives.read_zip`).
        decode: bytes + file name -> RGB PIL image; raises :class:`InvalidInputError` on bad files.
        extensions: file endings treated as images.

    Raises:
        InvalidInputError: not a zip, unsafe archive, or no labelled image found.
    """
    contents = read_zip(data)
    out = LabelledImages(skipped=list(contents.skipped))
    image_members = [m for m in contents.members if m.name.lower().endswith(tuple(extensions))]
    tables = [m for m in contents.members if m.name.lower().endswith((".csv", ".tsv", ".txt"))]
    others = [m for m in contents.members if m not in image_members and m not in tables]
    out.skipped += [f"{m.path} (not an image)" for m in others]
    labels_csv = None
    for table in tables:
        try:
            df = read_table(table.data, table.name)
        except InvalidInputError:
            continue
        file_col = _find_column(list(df.columns), ("file", "filename", "file_name", "image", "path", "name"))
        label_col = _find_column(list(df.columns), ("label", "class", "category", "target"))
        if file_col and label_col:
            labels_csv = (df, file_col, label_col, _find_column(list(df.columns), ("split", "subset")))
            break
    splits: list[str | None] = []
    if labels_csv is not None:
        df, file_col, label_col, split_col = labels_csv
        by_path = {m.path: m for m in image_members}
        by_name: dict[str, list] = {}
        for m in image_members:
            by_name.setdefault(m.name, []).append(m)
        for _, row in df.iterrows():
            key = str(row[file_col]).strip().replace("\\", "/").lstrip("./")
            label = str(row[label_col]).strip()
            member = by_path.get(key)
            if member is None:
                candidates = [m for m in by_name.get(PurePosixPath(key).name, []) if m.path.endswith(key)]
                member = candidates[0] if len(candidates) == 1 else None
            if member is None:
                out.skipped.append(f"{key} (listed in the CSV but not found in the archive)")
                continue
            if not label or label.lower() == "nan":
                out.skipped.append(f"{key} (no label)")
                continue
            split = SPLIT_NAMES.get(str(row[split_col]).strip().lower()) if split_col else None
            _add_decoded(out, splits, member.data, member.path, label, split, decode)
    else:
        for member in image_members:
            parts = member.parts
            if len(parts) < 2:
                out.skipped.append(f"{member.path} (not inside a class folder)")
                continue
            label = parts[-2].strip()
            split = next((SPLIT_NAMES[p.lower()] for p in parts[:-2] if p.lower() in SPLIT_NAMES), None)
            _add_decoded(out, splits, member.data, member.path, label, split, decode)
    if not out.images:
        reasons = "; ".join(out.skipped[:5])
        raise InvalidInputError(
            "No labelled images were found. Put each class's images in a folder named after the class "
            "(cats/a.jpg, dogs/b.jpg) or add a CSV with 'file' and 'label' columns."
            + (f" Skipped: {reasons}" if reasons else "")
        )
    if all(s is not None for s in splits):
        out.split = [str(s) for s in splits]
    if len(out.skipped) > max_skipped_listed:
        extra = len(out.skipped) - max_skipped_listed
        out.skipped = out.skipped[:max_skipped_listed] + [f"... and {extra} more"]
    return out


def _add_decoded(
    out: LabelledImages,
    splits: list[str | None],
    blob: bytes,
    path: str,
    label: str,
    split: str | None,
    decode: ImageDecoder,
) -> None:
    try:
        image = decode(blob, path)
    except InvalidInputError as exc:
        out.skipped.append(f"{path} ({exc})")
        return
    out.images.append(image)
    out.labels.append(label)
    out.names.append(path)
    splits.append(split)


def labelled_images_from_folder(
    folder: str | Path, *, decode: ImageDecoder = _default_decoder
) -> LabelledImages:
    """Read ``folder/<class>/<image>`` (or with ``train``/``val``/``test`` above the classes) from disk."""
    root = Path(folder)
    if not root.is_dir():
        raise InvalidInputError(f"No such folder: {folder}")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                zf.write(path, path.relative_to(root).as_posix())
    return labelled_images_from_zip(buffer.getvalue(), decode=decode)


def load_voc_crops(
    folder: str | Path,
    split: str = "train",
    *,
    classes: Sequence[str] | None = None,
    max_per_class: int | None = None,
    min_side: int = 8,
    margin: float = 0.0,
    seed: int = 0,
) -> LabelledImages:
    """Crop the labelled boxes of a Pascal VOC set into a classification set.

    Args:
        folder: the VOC root holding ``Annotations/``, ``JPEGImages/`` and ``ImageSets/Main/<split>.txt``.
        split: which image list to read (``train``, ``val``, ``test``, ``trainval``).
        classes: keep only these class names (default: all).
        max_per_class: keep at most this many crops per class (a seeded random sample).
        min_side: drop boxes smaller than this (pixels).
        margin: extra context around each box, as a share of its size.
        seed: for the sample.
    """
    root = Path(folder)
    ids_file = root / "ImageSets" / "Main" / f"{split}.txt"
    if not ids_file.is_file():
        raise InvalidInputError(f"No split list at {ids_file}.")
    ids = [line.strip() for line in ids_file.read_text().splitlines() if line.strip()]
    boxes: list[tuple[str, str, tuple[int, int, int, int]]] = []
    for image_id in ids:
        tree = ET.parse(root / "Annotations" / f"{image_id}.xml")
        for obj in tree.getroot().iter("object"):
            name = (obj.findtext("name") or "").strip()
            box = obj.find("bndbox")
            if not name or box is None or (classes is not None and name not in classes):
                continue
            x1, y1, x2, y2 = (int(float(box.findtext(k) or 0)) for k in ("xmin", "ymin", "xmax", "ymax"))
            boxes.append((image_id, name, (x1, y1, x2, y2)))
    if max_per_class is not None:
        rng = np.random.default_rng(seed)
        by_class: dict[str, list[int]] = {}
        for i, (_, name, _) in enumerate(boxes):
            by_class.setdefault(name, []).append(i)
        keep = sorted(
            j
            for idx in by_class.values()
            for j in (rng.permutation(idx)[:max_per_class] if len(idx) > max_per_class else idx)
        )
        boxes = [boxes[i] for i in keep]
    out = LabelledImages()
    cache: dict[str, Image.Image] = {}
    for image_id, name, (x0, y0, x1, y1) in boxes:
        if image_id not in cache:
            cache.clear()
            cache[image_id] = Image.open(root / "JPEGImages" / f"{image_id}.jpg").convert("RGB")
        img = cache[image_id]
        dx, dy = int((x1 - x0) * margin), int((y1 - y0) * margin)
        x0, y0 = max(0, x0 - dx), max(0, y0 - dy)
        x1, y1 = min(img.width, x1 + dx), min(img.height, y1 + dy)
        if x1 - x0 < min_side or y1 - y0 < min_side:
            out.skipped.append(f"{image_id} {name} box {x1 - x0}x{y1 - y0} (too small)")
            continue
        out.images.append(img.crop((x0, y0, x1, y1)))
        out.labels.append(name)
        out.names.append(f"{image_id}:{name}:{x0},{y0},{x1},{y1}")
    if not out.images:
        raise InvalidInputError(f"No boxes were found in the '{split}' split of {folder}.")
    return out


def check_trainable(labels: Sequence[str], *, min_per_class: int = MIN_IMAGES_PER_CLASS) -> dict[str, int]:
    """Raise :class:`TrainingError` unless there are two or more classes with enough images each."""
    counts = dict(sorted(Counter(labels).items()))
    if len(counts) < 2:
        only = next(iter(counts), "(none)")
        raise TrainingError(
            f"Training needs at least two classes; the data has only one ('{only}'). "
            "Add a folder of images for each category you want the model to tell apart."
        )
    small = {c: n for c, n in counts.items() if n < min_per_class}
    if small:
        listed = ", ".join(f"'{c}' ({n} image{'s' if n != 1 else ''})" for c, n in small.items())
        raise TrainingError(
            f"Each class needs at least {min_per_class} images (for training, validation and test); "
            f"too few in: {listed}."
        )
    return counts


def stratified_split(
    labels: Sequence[str], *, val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 0
) -> np.ndarray:
    """Assign ``train``/``val``/``test`` per item, keeping each class's share in every part.

    Every class gets at least one validation and one test item (so needs three or more items).
    """
    check_trainable(labels)
    labels_arr = np.asarray([str(x) for x in labels])
    out = np.empty(len(labels_arr), dtype=object)
    rng = np.random.default_rng(seed)
    for cls in sorted(set(labels_arr)):
        idx = rng.permutation(np.flatnonzero(labels_arr == cls))
        n = len(idx)
        n_test = max(1, int(round(n * test_fraction)))
        n_val = max(1, int(round(n * val_fraction)))
        if n - n_test - n_val < 1:
            n_val = max(1, n - n_test - 1)
        out[idx[:n_test]] = "test"
        out[idx[n_test : n_test + n_val]] = "val"
        out[idx[n_test + n_val :]] = "train"
    return out.astype(str)
