"""Reading an uploaded scan of any supported kind (DICOM, NIfTI, PNG/JPEG/TIFF) into a :class:`Scan`.

The format is told from the content first and the file name second; DICOM and NIfTI are read by
:mod:`.dicom` and :mod:`.nifti`, pictures here.

Example:
    >>> scan = load_scan(open("CT_small.dcm", "rb").read(), "CT_small.dcm")
    >>> scan.kind, scan.modality
    ('dicom', 'CT')
"""

from __future__ import annotations

import zlib
from pathlib import PurePosixPath

import numpy as np

from lucid.core.data import IMAGE_EXTENSIONS, _check_size, read_image
from lucid.domains.medical.dicom import read_dicom
from lucid.domains.medical.nifti import read_nifti
from lucid.domains.medical.scans import MAX_VOLUME_VOXELS, NIFTI_EXTENSIONS, Scan


def _suffix(filename: str | None) -> str:
    name = PurePosixPath((filename or "").replace("\\", "/")).name.lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    return PurePosixPath(name).suffix


def _looks_like_nifti(data: bytes) -> bool:
    head = data[:352]
    if data[:2] == b"\x1f\x8b":
        try:
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[:4096], 352)
        except zlib.error:
            return False
    return len(head) >= 348 and head[344:347] in (b"n+1", b"ni1") or head[4:8] == b"n+2\x00"


def sniff_format(data: bytes, filename: str | None = None) -> str:
    """``"dicom"``, ``"nifti"`` or ``"image"``, from the content first and the file name second."""
    if len(data) >= 132 and data[128:132] == b"DICM":
        return "dicom"
    if _looks_like_nifti(data):
        return "nifti"
    suffix = _suffix(filename)
    if suffix in NIFTI_EXTENSIONS:
        return "nifti"
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    if (
        data[:8] == b"\x89PNG\r\n\x1a\n"
        or data[:3] == b"\xff\xd8\xff"
        or data[:4] in (b"II*\x00", b"MM\x00*")
    ):
        return "image"
    return "dicom"


def load_scan(data: bytes, filename: str | None = None, *, max_voxels: int | None = None) -> Scan:
    """Read an uploaded scan of any supported kind.

    Args:
        data: the file's bytes.
        filename: its name (for messages, and to tell NIfTI from DICOM when the content is unclear).
        max_voxels: refuse volumes larger than this (default ``LUCID_MAX_VOLUME_VOXELS``).

    Raises:
        InvalidInputError: not a readable scan, no pixel data, unsupported compression, too large,
            or nothing but NaNs.
    """
    _check_size(data, "scan")
    max_voxels = MAX_VOLUME_VOXELS if max_voxels is None else max_voxels
    kind = sniff_format(data, filename)
    if kind == "dicom":
        return read_dicom(data, filename, max_voxels=max_voxels)
    if kind == "nifti":
        return read_nifti(data, filename, max_voxels=max_voxels)
    return read_photo(data, filename)


def read_photo(data: bytes, filename: str | None = None) -> Scan:
    """Read a PNG/JPEG/TIFF/... image. Grey pictures become one grey frame; colour ones stay RGB."""
    rgb = np.asarray(read_image(data, filename), dtype=np.float32)
    grey = bool(np.all(rgb[..., 0] == rgb[..., 1]) and np.all(rgb[..., 1] == rgb[..., 2]))
    volume = rgb[None, ..., 0] if grey else rgb[None]
    height, width = rgb.shape[:2]
    metadata = {"Format": "image", "Image size": f"{width} x {height}", "Colour": "grey" if grey else "RGB"}
    return Scan(
        volume=volume,
        kind="image",
        modality="photo",
        file_windows=[(128.0, 256.0)] if grey else [],
        metadata=metadata,
    )
