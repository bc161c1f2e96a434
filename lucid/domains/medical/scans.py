"""A loaded medical scan and what may be shown of it.

:class:`Scan` holds the pixel data in the scanner's own units (Hounsfield units for CT once the
rescale slope/intercept is applied), a safe allow-list of metadata and, kept apart, the identifying
fields that are only handed out on an explicit request. The readers (:mod:`.reading`, :mod:`.dicom`,
:mod:`.nifti`) fill it in; :mod:`.windowing` turns its slices into grey levels. Nothing here renders
or imports Streamlit.

Example:
    >>> scan = load_scan(open("CT_small.dcm", "rb").read(), "CT_small.dcm")
    >>> scan.metadata["Modality"], scan.units
    ('CT', 'HU')
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import numpy as np

from lucid.core.errors import InvalidInputError


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


#: Largest number of voxels (frames x rows x columns) a scan may hold; larger ones are refused.
MAX_VOLUME_VOXELS = _env_int("LUCID_MAX_VOLUME_VOXELS", 120_000_000)

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


def file_label(filename: str | None) -> str:
    """How messages name an upload: its base name in quotes, or "The file" when it has none."""
    return f"'{PurePosixPath((filename or '').replace(chr(92), '/')).name}'" if filename else "The file"
