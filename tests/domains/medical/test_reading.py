"""Reading DICOM and NIfTI uploads: units, inversion, frames, limits and clear messages for bad files."""

from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from lucid.core.errors import InvalidInputError
from lucid.domains.medical.reading import load_scan
from lucid.domains.medical.windowing import render_slice, window_options
from tests.fixtures.medical.builders import make_dicom, make_nifti


def _sample(name: str) -> bytes:
    return Path(get_testdata_file(name, download=False)).read_bytes()


def test_ct_small_is_rescaled_to_hounsfield_units():
    scan = load_scan(_sample("CT_small.dcm"), "CT_small.dcm")
    import pydicom

    raw = pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False)).pixel_array
    assert scan.units == "HU" and scan.modality == "CT"
    np.testing.assert_array_equal(scan.slice(0), raw.astype(np.float32) - 1024.0)
    options = window_options(scan)
    assert {"Brain", "Subdural", "Bone", "Lung", "Soft tissue"} <= set(options)


def test_monochrome1_is_inverted():
    pixels = np.array([[0, 1000], [2000, 4000]], dtype=np.uint16).repeat(8, 0).repeat(8, 1)
    mono1 = load_scan(make_dicom(pixels, photometric="MONOCHROME1", slope=None, window=None), "m1.dcm")
    mono2 = load_scan(make_dicom(pixels, photometric="MONOCHROME2", slope=None, window=None), "m2.dcm")
    assert mono1.invert and not mono2.invert
    a = render_slice(mono1, mono1.slice(0), 2000, 4000)[..., 0]
    b = render_slice(mono2, mono2.slice(0), 2000, 4000)[..., 0]
    np.testing.assert_array_equal(a, 255 - b)
    assert a[0, 0] > a[-1, -1]  # the highest stored value is the darkest in MONOCHROME1


def test_multi_frame_keeps_each_frame_and_huge_files_are_refused():
    frames = np.stack([np.full((16, 16), v, dtype=np.uint16) for v in (10, 20, 30)])
    scan = load_scan(make_dicom(frames, slope=None, window=None), "multi.dcm")
    assert scan.n_slices() == 3
    assert [float(scan.slice(i).mean()) for i in range(3)] == [10.0, 20.0, 30.0]
    with pytest.raises(InvalidInputError, match="3 frames of 16x16.*limit"):
        load_scan(make_dicom(frames, slope=None, window=None), "multi.dcm", max_voxels=500)


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (b"this is a text file, not a scan at all" * 10, "scan.dcm", "not a DICOM file"),
        (make_dicom(np.zeros((8, 8), np.uint16), with_pixels=False), "nopix.dcm", "no image"),
        (_sample("JPGExtended.dcm"), "JPGExtended.dcm", "JPEG Extended.*cannot decode"),
        (b"", "empty.dcm", "empty"),
    ],
)
def test_bad_scans_get_clear_messages(data, name, message):
    with pytest.raises(InvalidInputError, match=message):
        load_scan(data, name)


def test_nifti_slices_along_each_axis_and_nans_are_reported():
    volume = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    volume[1, 2, 3] = np.nan
    scan = load_scan(make_nifti(volume, gz=True), "brain.nii.gz")
    assert scan.kind == "nifti"
    assert [scan.n_slices(a) for a in (0, 1, 2)] == [4, 5, 6]
    assert scan.slice(0, axis=2).shape == (5, 4)  # rotated for display
    assert np.isfinite(scan.volume).all()
    assert any("NaN" in w for w in scan.warnings)
    with pytest.raises(InvalidInputError, match="no finite values"):
        load_scan(make_nifti(np.full((4, 4, 4), np.nan)), "nan.nii")
