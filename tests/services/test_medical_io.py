"""Reading, windowing and de-identifying scans (services/medical_io.py)."""

import sys
from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "medical"))

from builders import FAKE_PHI, make_dicom, make_nifti, make_zip  # noqa: E402

from lucid.core.errors import InvalidInputError  # noqa: E402
from lucid.domains.medical.scans import (  # noqa: E402
    WINDOW_PRESETS,
    load_scan,
    render_slice,
    to_png,
    window_image,
    window_options,
)
from lucid.domains.medical.training import group_split, labelled_scans_from_zip, render_for_model  # noqa: E402


def _sample(name: str) -> bytes:
    return Path(get_testdata_file(name, download=False)).read_bytes()


def test_window_maps_known_hu_values_to_expected_grey_levels():
    center, width = WINDOW_PRESETS["Brain"]  # 40 / 80
    hu = np.array([-1000.0, 0.0, 20.0, 40.0, 79.0, 80.0, 3000.0])
    grey = window_image(hu, center, width)
    # DICOM linear window: ((x - (c - 0.5)) / (w - 1) + 0.5) * 255, clipped.
    assert grey.tolist() == [0, 0, 65, 129, 255, 255, 255]
    lung = window_image(np.array([-600.0]), *WINDOW_PRESETS["Lung"])
    assert lung.tolist() == [128]


def test_ct_small_is_rescaled_to_hounsfield_units():
    scan = load_scan(_sample("CT_small.dcm"), "CT_small.dcm")
    import pydicom

    raw = pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False)).pixel_array
    assert scan.units == "HU" and scan.modality == "CT"
    np.testing.assert_array_equal(scan.slice(0), raw.astype(np.float32) - 1024.0)
    options = window_options(scan)
    assert {"Brain", "Subdural", "Bone", "Lung", "Soft tissue"} <= set(options)


def test_mr_small_offers_its_own_window_and_no_ct_presets():
    scan = load_scan(_sample("MR_small.dcm"), "MR_small")  # no extension: recognised by content
    options = window_options(scan)
    assert options["File window"] == (600.0, 1600.0)
    assert "Brain" not in options


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


def test_phi_is_kept_apart_and_never_in_metadata_or_png():
    data = make_dicom(np.arange(32 * 32, dtype=np.uint16).reshape(32, 32))
    scan = load_scan(data, "scan.dcm")
    shown = " ".join(f"{k} {v}" for k, v in scan.metadata.items())
    for value in FAKE_PHI.values():
        assert value not in shown
    assert scan.identifying_fields()["PatientName"] == FAKE_PHI["PatientName"]
    assert "PID-7734-XQ" not in repr(scan)
    png = to_png(render_slice(scan, scan.slice(0), 40, 400))
    for value in FAKE_PHI.values():
        assert value.encode() not in png
    assert scan.patient_key and scan.patient_key != FAKE_PHI["PatientID"]


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


def test_volume_where_2d_expected_and_mixed_modalities_are_refused():
    volume = load_scan(make_nifti(np.random.rand(8, 8, 8)), "v.nii")
    with pytest.raises(InvalidInputError, match="single 2-D image"):
        render_for_model(volume)
    ct = make_dicom(np.zeros((16, 16), np.uint16), modality="CT")
    mr = make_dicom(np.zeros((16, 16), np.uint16), modality="MR", slope=None)
    files = {f"a/{i}.dcm": ct for i in range(4)} | {f"b/{i}.dcm": mr for i in range(4)}
    with pytest.raises(InvalidInputError, match="mixes modalities.*CT: 4.*MR: 4"):
        labelled_scans_from_zip(make_zip(files))
    multi = make_dicom(np.zeros((3, 16, 16), np.uint16))
    with pytest.raises(InvalidInputError, match="a/3.dcm.*single 2-D image"):
        labelled_scans_from_zip(make_zip({f"a/{i}.dcm": ct for i in range(3)} | {"a/3.dcm": multi}))


def test_zip_of_dicom_class_folders_groups_by_patient_without_leakage():
    rng = np.random.default_rng(0)
    files = {}
    for patient in range(10):
        label = "tumour" if patient % 2 else "normal"
        for k in range(3):
            pixels = rng.integers(0, 2000, (16, 16)).astype(np.uint16)
            phi = {**FAKE_PHI, "PatientID": f"P{patient}"}
            files[f"{label}/p{patient}_{k}.dcm"] = make_dicom(pixels, phi=phi)
    labelled = labelled_scans_from_zip(make_zip(files))
    assert labelled.group_kind == "patient" and labelled.modality == "CT"
    assert labelled.counts() == {"normal": 15, "tumour": 15}
    split = np.array(labelled.data.split)
    assert split.tolist() == group_split(labelled.data.labels, labelled.groups, seed=0)
    groups = np.array(labelled.groups)
    sets = {s: set(groups[split == s]) for s in ("train", "val", "test")}
    assert sets["test"] and sets["train"]
    assert not (sets["train"] & sets["test"]) and not (sets["train"] & sets["val"])
    assert not (sets["val"] & sets["test"])
