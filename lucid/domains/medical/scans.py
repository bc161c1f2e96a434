"""Reading medical scans (DICOM, NIfTI, PNG/JPEG/TIFF), windowing them and keeping patient data hidden.

Everything takes the bytes of an upload and returns a :class:`Scan`: the pixel data in the
scanner's own units (Hounsfield units for CT once the rescale slope/intercept is applied), the
window presets that fit it, a safe allow-list of metadata and, kept apart, the identifying fields
that are only handed out on an explicit request. Nothing here renders or imports Streamlit.

Example:
    >>> scan = load_scan(open("CT_small.dcm", "rb").read(), "CT_small.dcm")
    >>> grey = window_image(scan.slice(0), *WINDOW_PRESETS["Soft tissue"], invert=scan.invert)
    >>> grey.dtype, scan.metadata["Modality"]
    (dtype('uint8'), 'CT')
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from lucid.core.data import IMAGE_EXTENSIONS, MAX_IMAGE_PIXELS, _check_size, read_image
from lucid.core.errors import InvalidInputError


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


#: Largest number of voxels (frames x rows x columns) a scan may hold; larger ones are refused.
MAX_VOLUME_VOXELS = _env_int("LUCID_MAX_VOLUME_VOXELS", 120_000_000)

#: CT window presets in Hounsfield units, (centre, width).
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "Brain": (40.0, 80.0),
    "Subdural": (75.0, 215.0),
    "Bone": (400.0, 1800.0),
    "Lung": (-600.0, 1500.0),
    "Soft tissue": (50.0, 400.0),
}

#: Metadata that may be shown: it describes the image, not the patient.
SAFE_TAGS: tuple[str, ...] = (
    "Modality",
    "BodyPartExamined",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "PixelSpacing",
    "SliceThickness",
    "SpacingBetweenSlices",
    "WindowCenter",
    "WindowWidth",
    "RescaleSlope",
    "RescaleIntercept",
    "PhotometricInterpretation",
    "BitsStored",
    "SamplesPerPixel",
    "MagneticFieldStrength",
    "KVP",
)

#: Identifying fields: never shown unless the user explicitly reveals them, never exported.
IDENTIFYING_TAGS: tuple[str, ...] = (
    "PatientName",
    "PatientID",
    "OtherPatientIDs",
    "PatientBirthDate",
    "PatientBirthTime",
    "PatientSex",
    "PatientAge",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "PhysiciansOfRecord",
    "OperatorsName",
    "NameOfPhysiciansReadingStudy",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "SeriesDate",
    "AcquisitionDate",
    "ContentDate",
    "StudyTime",
    "SeriesTime",
    "AcquisitionTime",
    "ContentTime",
    "StationName",
    "DeviceSerialNumber",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
)

NIFTI_EXTENSIONS = (".nii", ".nii.gz")
DICOM_EXTENSIONS = (".dcm", ".dicom", ".dic", "")

_TRANSFER_SYNTAX_HINT = (
    "This installation decodes uncompressed, RLE, JPEG baseline (8-bit) and JPEG 2000 DICOM. "
    "Export the file uncompressed (e.g. `dcmdjpeg` or `gdcmconv --raw`) and upload it again."
)


@dataclass
class Scan:
    """A loaded scan.

    Attributes:
        volume: float32 pixels in the scanner's units: (frames, rows, columns) for grey images,
            (frames, rows, columns, 3) for colour ones. NIfTI volumes keep their three voxel axes.
        kind: ``"dicom"``, ``"nifti"`` or ``"image"``.
        modality: DICOM modality (``CT``, ``MR``, ...), ``"NIfTI"`` or ``"photo"``.
        invert: the image is MONOCHROME1 (high values are dark); windowing inverts the grey levels.
        units: what the pixel values mean (``"HU"`` for rescaled CT).
        file_windows: the (centre, width) windows stored in the file, if any.
        metadata: the safe allow-list (no patient data).
        patient_key: a one-way hash of the patient ID (for patient-level splits), or ``None``.
        warnings: things a user should know (NaNs replaced, burned-in annotation, frames dropped).
    """

    volume: np.ndarray
    kind: str
    modality: str
    invert: bool = False
    units: str = "stored value"
    file_windows: list[tuple[float, float]] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    patient_key: str | None = None
    warnings: list[str] = field(default_factory=list)
    _identifying: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def is_colour(self) -> bool:
        return self.kind != "nifti" and self.volume.ndim == 4

    @property
    def axes(self) -> list[int]:
        """Axes along which slices can be taken (three for NIfTI, the frame axis otherwise)."""
        return [0, 1, 2] if self.kind == "nifti" else [0]

    def n_slices(self, axis: int = 0) -> int:
        """How many slices there are along ``axis``."""
        if axis not in self.axes:
            raise InvalidInputError(f"This scan has no slice axis {axis}.")
        return int(self.volume.shape[axis])

    def slice(self, index: int = 0, axis: int = 0) -> np.ndarray:
        """One 2-D slice (rows x columns, or rows x columns x 3 for colour), float32.

        NIfTI slices are rotated so the first voxel axis runs left-right and the second bottom-up,
        the usual radiological display of an axial slice.
        """
        n = self.n_slices(axis)
        if not 0 <= index < n:
            raise InvalidInputError(f"Slice {index} does not exist; choose 0 to {n - 1}.")
        plane = np.take(self.volume, index, axis=axis)
        if self.kind == "nifti":
            plane = np.rot90(plane)
        return np.ascontiguousarray(plane, dtype=np.float32)

    def identifying_fields(self) -> dict[str, str]:
        """The patient-identifying fields found in the file. Call only on the user's explicit request."""
        return dict(self._identifying)


# ----------------------------------------------------------------------------------------------
# Windowing
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# Format detection
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# DICOM
# ----------------------------------------------------------------------------------------------


def _label(filename: str | None) -> str:
    return f"'{PurePosixPath((filename or '').replace(chr(92), '/')).name}'" if filename else "The file"


def _parse_dicom(data: bytes, filename: str | None) -> Any:
    import pydicom
    from pydicom.errors import InvalidDicomError

    label = _label(filename)
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
    label = _label(filename)
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


# ----------------------------------------------------------------------------------------------
# NIfTI
# ----------------------------------------------------------------------------------------------


def read_nifti(data: bytes, filename: str | None = None, *, max_voxels: int | None = None) -> Scan:
    """Read a NIfTI-1/2 volume (optionally gzipped). NaNs are replaced by the minimum and reported.

    Raises:
        InvalidInputError: not NIfTI, too many voxels, fewer than two dimensions, or no finite value.
    """
    import nibabel as nib

    max_voxels = MAX_VOLUME_VOXELS if max_voxels is None else max_voxels
    label = _label(filename)
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


# ----------------------------------------------------------------------------------------------
# Photos (PNG, JPEG, TIFF, ...)
# ----------------------------------------------------------------------------------------------


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
