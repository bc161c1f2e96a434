"""Reading DICOM: rescale to modality units, colour conversion, multi-frame, safe metadata."""

from __future__ import annotations

import hashlib
import io
import warnings
from typing import Any

import numpy as np

from lucid.core.data import MAX_IMAGE_PIXELS
from lucid.core.errors import InvalidInputError
from lucid.domains.medical.scans import IDENTIFYING_TAGS, MAX_VOLUME_VOXELS, SAFE_TAGS, Scan, file_label

_TRANSFER_SYNTAX_HINT = (
    "This installation decodes uncompressed, RLE, JPEG baseline (8-bit) and JPEG 2000 DICOM. "
    "Export the file uncompressed (e.g. `dcmdjpeg` or `gdcmconv --raw`) and upload it again."
)


def _parse_dicom(data: bytes, filename: str | None) -> Any:
    import pydicom
    from pydicom.errors import InvalidDicomError

    label = file_label(filename)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return pydicom.dcmread(io.BytesIO(data), force=False)
        except InvalidDicomError:
            pass
        except Exception as exc:  # noqa: BLE001 - pydicom raises many types on corrupt files
            raise InvalidInputError(f"{label} is a damaged DICOM file and could not be read.") from exc
        # Files without the 128-byte preamble are still DICOM if a plausible header parses.
        try:
            ds = pydicom.dcmread(io.BytesIO(data), force=True)
            tags = list(ds.keys())
        except Exception:  # noqa: BLE001
            tags = []
            ds = None
    plausible = (
        ds is not None
        and len(tags) >= 3
        and all(t.group < 0x7FE1 for t in tags[:3])
        and any(k in ds for k in ("SOPClassUID", "Modality", "Rows", "PixelData", "StudyInstanceUID"))
    )
    if not plausible:
        raise InvalidInputError(
            f"{label} is not a DICOM file (no DICOM header was found). Upload a DICOM (.dcm), "
            "NIfTI (.nii, .nii.gz) or PNG/JPEG/TIFF image."
        )
    return ds


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return ", ".join(_text(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _windows(ds: Any) -> list[tuple[float, float]]:
    centers, widths = ds.get("WindowCenter"), ds.get("WindowWidth")
    if centers is None or widths is None:
        return []
    centers = list(centers) if type(centers).__name__ == "MultiValue" else [centers]
    widths = list(widths) if type(widths).__name__ == "MultiValue" else [widths]
    out = []
    for c, w in zip(centers, widths, strict=False):
        try:
            c, w = float(c), float(w)
        except (TypeError, ValueError):
            continue
        if np.isfinite(c) and np.isfinite(w) and w >= 1:
            out.append((c, w))
    return out


def _rescale(ds: Any) -> tuple[float, float] | None:
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope is None and intercept is None:
        shared = ds.get("SharedFunctionalGroupsSequence")
        if shared and "PixelValueTransformationSequence" in shared[0]:
            item = shared[0].PixelValueTransformationSequence[0]
            slope, intercept = item.get("RescaleSlope"), item.get("RescaleIntercept")
    if slope is None and intercept is None:
        return None
    return float(slope if slope is not None else 1.0), float(intercept if intercept is not None else 0.0)


def read_dicom(data: bytes, filename: str | None = None, *, max_voxels: int | None = None) -> Scan:
    """Read a DICOM file: rescale to modality units, colour conversion, multi-frame, safe metadata.

    Raises:
        InvalidInputError: not DICOM, no pixel data, an undecodable compression, or too many voxels.
    """
    max_voxels = MAX_VOLUME_VOXELS if max_voxels is None else max_voxels
    label = file_label(filename)
    ds = _parse_dicom(data, filename)
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        what = _text(ds.get("Modality")) or "this"
        raise InvalidInputError(
            f"{label} is DICOM but holds no image (no pixel data); {what} objects such as reports, "
            "structure sets or plans cannot be viewed here."
        )
    rows, cols = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    frames = int(ds.get("NumberOfFrames") or 1)
    samples = int(ds.get("SamplesPerPixel") or 1)
    if rows <= 0 or cols <= 0:
        raise InvalidInputError(f"{label} does not state its image size (Rows/Columns); it cannot be shown.")
    voxels = rows * cols * frames
    if voxels > max_voxels:
        raise InvalidInputError(
            f"{label} holds {frames:,} frames of {cols}x{rows} pixels ({voxels / 1e6:.0f} million voxels); "
            f"the limit is {max_voxels / 1e6:.0f} million. Export a subset of the frames."
        )
    if rows * cols > MAX_IMAGE_PIXELS:
        raise InvalidInputError(
            f"{label} is {cols}x{rows} pixels; the limit is {MAX_IMAGE_PIXELS / 1e6:.0f} MP."
        )
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = ds.pixel_array
    except (RuntimeError, NotImplementedError) as exc:
        name = getattr(syntax, "name", None) or str(syntax or "unknown")
        raise InvalidInputError(
            f"{label} is compressed with '{name}', which this installation cannot decode. "
            + _TRANSFER_SYNTAX_HINT
        ) from exc
    except Exception as exc:  # noqa: BLE001 - truncated or inconsistent pixel data
        raise InvalidInputError(
            f"{label} has damaged or truncated pixel data and could not be decoded."
        ) from exc

    photometric = str(ds.get("PhotometricInterpretation") or "MONOCHROME2").upper()
    notes: list[str] = []
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        arr = apply_color_lut(arr, ds)
        if arr.dtype != np.uint8:
            arr = arr / 257.0
        samples = 3
    colour = samples == 3
    if colour:
        volume = arr.reshape((frames, rows, cols, 3)) if arr.ndim == 3 or frames == 1 else arr
        volume = np.asarray(volume, dtype=np.float32)
        if volume.max(initial=0) > 255:
            volume = volume / (volume.max() / 255.0)
        units = "RGB"
    else:
        volume = np.asarray(arr, dtype=np.float32).reshape((frames, rows, cols))
        rescale = _rescale(ds)
        if rescale is not None:
            slope, intercept = rescale
            volume = volume * np.float32(slope) + np.float32(intercept)
        modality = _text(ds.get("Modality")).upper()
        units = "HU" if modality == "CT" and rescale is not None else "stored value"
    if str(ds.get("BurnedInAnnotation") or "").upper() == "YES":
        notes.append(
            "The file says text is burned into the pixels (BurnedInAnnotation = YES); it may show "
            "patient details that no metadata filter can remove."
        )
    metadata = {k: _text(ds.get(k)) for k in SAFE_TAGS if ds.get(k) not in (None, "")}
    metadata["Transfer syntax"] = getattr(syntax, "name", None) or "unknown"
    identifying = {k: _text(ds.get(k)) for k in IDENTIFYING_TAGS if ds.get(k) not in (None, "")}
    patient_id = _text(ds.get("PatientID")).strip()
    return Scan(
        volume=volume,
        kind="dicom",
        modality=_text(ds.get("Modality")).upper() or "OT",
        invert=photometric == "MONOCHROME1",
        units=units,
        file_windows=_windows(ds) if not colour else [],
        metadata=metadata,
        patient_key=hashlib.sha256(patient_id.encode()).hexdigest()[:12] if patient_id else None,
        warnings=notes,
        _identifying=identifying,
    )
