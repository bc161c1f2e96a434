"""Vision inputs: the bundled sample photos, uploaded images and zips of images, and their fingerprint.

Plain inputs and outputs (PIL images, bytes); bad files are reported, never fatal.

Example:
    >>> from lucid.domains.vision.data import read_uploaded_images, sample_images
    >>> photos = sample_images(["chelsea", "coffee"])        # name -> RGB PIL image
    >>> uploaded = read_uploaded_images([("cat.png", png_bytes), ("set.zip", zip_bytes)])
    >>> uploaded.names, uploaded.problems
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from lucid.core.archives import is_zip, read_zip
from lucid.core.data import IMAGE_EXTENSIONS, read_image
from lucid.core.errors import InvalidInputError, ModelNotFoundError

#: Sample photos bundled in the scikit-image wheel (others download and fail offline).
SAMPLE_PHOTOS: dict[str, str] = {
    "chelsea": "Chelsea the cat",
    "coffee": "A cup of coffee",
    "astronaut": "Astronaut portrait",
    "rocket": "Rocket on the launch pad",
}


def sample_images(names: Sequence[str] | None = None) -> dict[str, Image.Image]:
    """Sample photos from scikit-image's bundled data, as RGB PIL images keyed by name.

    Raises:
        ModelNotFoundError: an unknown photo name (the message lists the valid ones).
    """
    from skimage import data as skdata

    chosen = list(names) if names is not None else list(SAMPLE_PHOTOS)
    unknown = [n for n in chosen if n not in SAMPLE_PHOTOS]
    if unknown:
        raise ModelNotFoundError(unknown[0], list(SAMPLE_PHOTOS), kind="sample photo")
    return {n: Image.fromarray(np.asarray(getattr(skdata, n)())).convert("RGB") for n in chosen}


@dataclass(frozen=True)
class UploadedImages:
    """Images decoded from uploads, in order, with the files that could not be used and why."""

    names: list[str]
    images: list[Image.Image]
    problems: list[str]


def read_uploaded_images(files: Sequence[tuple[str, bytes]], *, max_images: int = 500) -> UploadedImages:
    """Decode uploaded images and zips of images; bad files are reported, never fatal.

    Args:
        files: (file name, bytes) pairs; a zip contributes every image inside it (any folder depth).
        max_images: refuse more images than this in one go.

    Raises:
        InvalidInputError: nothing usable at all (the message lists what was wrong), or too many.
    """
    names: list[str] = []
    images: list[Image.Image] = []
    problems: list[str] = []
    for filename, blob in files:
        if is_zip(blob):
            try:
                archive = read_zip(blob)
            except InvalidInputError as exc:
                problems.append(f"{filename}: {exc}")
                continue
            problems.extend(f"{filename}/{s}: skipped" for s in archive.skipped)
            for member in archive.members:
                if not member.name.lower().endswith(IMAGE_EXTENSIONS):
                    problems.append(f"{filename}/{member.path}: not an image file")
                    continue
                decode_into(f"{filename}/{member.path}", member.data, names, images, problems)
        else:
            decode_into(filename, blob, names, images, problems)
        if len(images) > max_images:
            raise InvalidInputError(
                f"More than {max_images} images were uploaded; classify them in smaller batches."
            )
    if not images:
        detail = "; ".join(problems[:5]) or "no files"
        raise InvalidInputError(f"No usable image was found ({detail}).")
    return UploadedImages(names, images, problems)


def decode_into(
    name: str, blob: bytes, names: list[str], images: list[Image.Image], problems: list[str]
) -> None:
    """Decode one file with the safe decoder: append it to ``names`` and ``images``, or why not to
    ``problems`` (the page's uploads and the batch job's partitions decode the same way)."""
    try:
        images.append(read_image(blob, name.rsplit("/", 1)[-1]))
        names.append(name)
    except InvalidInputError as exc:
        problems.append(str(exc) if name.rsplit("/", 1)[-1] in str(exc) else f"{name}: {exc}")


def images_digest(items: Sequence[tuple[str, np.ndarray]]) -> str:
    """A short fingerprint of named pixel arrays (the page's cache key for a set of images)."""
    h = hashlib.sha256()
    for name, arr in items:
        h.update(name.encode())
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()[:16]
