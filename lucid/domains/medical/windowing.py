"""Windowing: scanner values to 8-bit grey levels as a viewer shows them, and as a model is fed.

Example:
    >>> grey = window_image(scan.slice(0), *WINDOW_PRESETS["Soft tissue"], invert=scan.invert)
    >>> image = render_for_model(scan, "file")   # H x W x 3 uint8, the file's own window
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from lucid.core.errors import InvalidInputError
from lucid.domains.medical.scans import Scan

#: CT window presets in Hounsfield units, (centre, width).
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "Brain": (40.0, 80.0),
    "Subdural": (75.0, 215.0),
    "Bone": (400.0, 1800.0),
    "Lung": (-600.0, 1500.0),
    "Soft tissue": (50.0, 400.0),
}


def window_image(pixels: np.ndarray, center: float, width: float, *, invert: bool = False) -> np.ndarray:
    """Map modality values to 8-bit grey levels with the DICOM linear VOI window (PS3.3 C.11.2.1.2).

    Values at or below ``center - 0.5 - (width - 1) / 2`` become 0, values above
    ``center - 0.5 + (width - 1) / 2`` become 255, and values between are mapped linearly.
    ``invert`` flips the result (MONOCHROME1: high values are displayed dark).
    """
    if not np.isfinite(center) or not np.isfinite(width):
        raise InvalidInputError("The window centre and width must be numbers.")
    if width < 1:
        raise InvalidInputError("The window width must be at least 1.")
    x = np.asarray(pixels, dtype=np.float64)
    if width == 1:
        out = np.where(x > center - 0.5, 255.0, 0.0)
    else:
        out = ((x - (center - 0.5)) / (width - 1) + 0.5) * 255.0
    out = np.clip(np.nan_to_num(out, nan=0.0), 0.0, 255.0)
    grey = np.rint(out).astype(np.uint8)
    return (255 - grey) if invert else grey


def auto_window(pixels: np.ndarray, low: float = 1.0, high: float = 99.0) -> tuple[float, float]:
    """A window spanning the ``low``-``high`` percentiles of the finite values (centre, width)."""
    finite = np.asarray(pixels, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(finite, [low, high])
    if hi <= lo:
        lo, hi = float(finite.min()), float(finite.max())
    width = max(float(hi - lo), 1.0)
    return float(lo + width / 2.0), width


def full_range_window(pixels: np.ndarray) -> tuple[float, float]:
    """A window covering every finite value (centre, width)."""
    return auto_window(pixels, 0.0, 100.0)


def window_options(scan: Scan, pixels: np.ndarray | None = None) -> dict[str, tuple[float, float]]:
    """The windows offered for a scan: the file's own, CT presets (only for HU data), auto and full range."""
    pixels = scan.slice(0) if pixels is None else pixels
    options: dict[str, tuple[float, float]] = {}
    for i, (center, width) in enumerate(scan.file_windows):
        options["File window" if i == 0 else f"File window {i + 1}"] = (center, width)
    if scan.units == "HU":
        options.update(WINDOW_PRESETS)
    options["Auto (1st-99th percentile)"] = auto_window(pixels)
    options["Full range"] = full_range_window(pixels)
    return options


def render_slice(scan: Scan, pixels: np.ndarray, center: float, width: float) -> np.ndarray:
    """A displayable H x W x 3 uint8 image of a slice: grey scans windowed, colour images as they are."""
    if pixels.ndim == 3:
        return np.clip(pixels, 0, 255).astype(np.uint8)
    grey = window_image(pixels, center, width, invert=scan.invert)
    return np.repeat(grey[..., None], 3, axis=-1)


def to_png(image: np.ndarray) -> bytes:
    """PNG bytes of an image array with no metadata chunks (so no patient data can travel with it)."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def render_for_model(scan: Scan, window: str = "file") -> np.ndarray:
    """The 2-D image of a one-slice scan windowed as in the viewer, H x W x 3 uint8.

    Args:
        scan: a loaded scan with exactly one slice.
        window: ``file`` (the file's own window, else automatic), ``auto`` (1st-99th percentile),
            or a CT preset name (needs Hounsfield units).

    Raises:
        InvalidInputError: the scan is a volume, or the window does not fit the data.
    """
    if scan.kind == "nifti" or scan.volume.shape[0] != 1:
        n = scan.volume.shape[0] if scan.kind != "nifti" else int(np.prod(scan.volume.shape[:3]))
        raise InvalidInputError(
            f"Expected a single 2-D image but got a volume ({n:,} slices/voxels); export one slice per file."
        )
    pixels = scan.slice(0)
    if window in WINDOW_PRESETS:
        if scan.units != "HU":
            raise InvalidInputError(f"The '{window}' preset needs CT data in Hounsfield units.")
        center, width = WINDOW_PRESETS[window]
    elif window == "file" and scan.file_windows:
        center, width = scan.file_windows[0]
    elif window in ("file", "auto"):
        center, width = auto_window(pixels)
    else:
        raise InvalidInputError(f"Unknown window '{window}'. Use file, auto or {', '.join(WINDOW_PRESETS)}.")
    return render_slice(scan, pixels, center, width)
