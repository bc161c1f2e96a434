"""Labelled scans from a zip of class folders: labels, refusals, patient-level split without leakage."""

import numpy as np
import pytest

from lucid.core.errors import InvalidInputError
from lucid.domains.medical.data import group_split, labelled_scans_from_zip
from lucid.domains.medical.reading import load_scan
from lucid.domains.medical.windowing import render_for_model
from tests.fixtures.medical.builders import FAKE_PHI, make_dicom, make_nifti, make_zip


def test_zip_of_png_folders_reads_labels():
    from lucid.domains.medical.windowing import to_png

    files = {
        f"{c}/{i}.png": to_png(np.full((20, 20, 3), 40 * i, np.uint8)) for c in ("x", "y") for i in range(4)
    }
    labelled = labelled_scans_from_zip(make_zip(files))
    assert labelled.counts() == {"x": 4, "y": 4}
    assert labelled.group_kind == "file" and labelled.modality == "photo"
    with pytest.raises(InvalidInputError, match="at least 4"):
        labelled_scans_from_zip(make_zip({k: v for k, v in files.items() if not k.endswith("3.png")}))


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
