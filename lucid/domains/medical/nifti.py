"""Reading NIfTI-1/2 volumes (optionally gzipped)."""

from __future__ import annotations

import gzip
import io
import zlib

import numpy as np

from lucid.core.errors import InvalidInputError
from lucid.domains.medical.scans import MAX_VOLUME_VOXELS, Scan, file_label


def read_nifti(data: bytes, filename: str | None = None, *, max_voxels: int | None = None) -> Scan:
    """Read a NIfTI-1/2 volume (optionally gzipped). NaNs are replaced by the minimum and reported.

    Raises:
        InvalidInputError: not NIfTI, too many voxels, fewer than two dimensions, or no finite value.
    """
    import nibabel as nib

    max_voxels = MAX_VOLUME_VOXELS if max_voxels is None else max_voxels
    label = file_label(filename)
    raw = data
    if data[:2] == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as fh:
                raw = fh.read(max_voxels * 8 + 1_000_000)
        except (OSError, EOFError, zlib.error) as exc:
            raise InvalidInputError(f"{label} is a damaged gzip file.") from exc
    try:
        klass = nib.Nifti2Image if raw[4:8] == b"n+2\x00" else nib.Nifti1Image
        image = klass.from_bytes(raw)
        shape = tuple(int(s) for s in image.shape)
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types on bad headers
        raise InvalidInputError(f"{label} is not a readable NIfTI file.") from exc
    notes: list[str] = []
    if len(shape) < 2:
        raise InvalidInputError(f"{label} has {len(shape)} dimension(s); an image needs at least two.")
    if int(np.prod(shape[:3])) > max_voxels:
        raise InvalidInputError(
            f"{label} holds {np.prod(shape[:3]) / 1e6:.0f} million voxels; "
            f"the limit is {max_voxels / 1e6:.0f} million."
        )
    try:
        dataobj = image.dataobj
        if len(shape) > 3:
            notes.append(f"The volume has {len(shape)} dimensions {shape}; the first 3-D volume is shown.")
            volume = np.asarray(dataobj[(slice(None),) * 3 + (0,) * (len(shape) - 3)], dtype=np.float32)
        else:
            volume = np.asarray(dataobj, dtype=np.float32)
    except Exception as exc:  # noqa: BLE001 - truncated data
        raise InvalidInputError(
            f"{label} is truncated: its voxel data is shorter than its header says."
        ) from exc
    if volume.ndim == 2:
        volume = volume[:, :, None]
    bad = ~np.isfinite(volume)
    if bad.all():
        raise InvalidInputError(f"{label} contains no finite values (every voxel is NaN or infinite).")
    if bad.any():
        fill = float(volume[~bad].min())
        volume = np.where(bad, fill, volume).astype(np.float32)
        notes.append(
            f"{int(bad.sum()):,} voxels were NaN or infinite; they are shown as the lowest value ({fill:g})."
        )
    zooms = image.header.get_zooms()[:3]
    metadata = {
        "Format": "NIfTI-2" if klass is nib.Nifti2Image else "NIfTI-1",
        "Volume size": " x ".join(str(s) for s in volume.shape),
        "Voxel size (mm)": " x ".join(f"{float(z):g}" for z in zooms),
    }
    return Scan(volume=volume, kind="nifti", modality="NIfTI", metadata=metadata, warnings=notes)
