"""Patient-identifying fields are kept apart: never in the shown metadata, the repr or an exported PNG."""

import numpy as np

from lucid.domains.medical.reading import load_scan
from lucid.domains.medical.windowing import render_slice, to_png
from tests.fixtures.medical.builders import FAKE_PHI, make_dicom


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
