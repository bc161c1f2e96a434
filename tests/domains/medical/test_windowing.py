"""Windowing scanner values into grey levels, and the windows offered for a scan."""

from pathlib import Path

import numpy as np
from pydicom.data import get_testdata_file

from lucid.domains.medical.reading import load_scan
from lucid.domains.medical.windowing import WINDOW_PRESETS, window_image, window_options


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


def test_mr_small_offers_its_own_window_and_no_ct_presets():
    scan = load_scan(_sample("MR_small.dcm"), "MR_small")  # no extension: recognised by content
    options = window_options(scan)
    assert options["File window"] == (600.0, 1600.0)
    assert "Brain" not in options
