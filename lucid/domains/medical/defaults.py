"""The phydcm demo models as served: their classifier, their conversion into the model store and the
behaviour measured on the bundled samples (all that can be measured offline without labelled scans).

Example:
    >>> convert_default(store, "phydcm_ct")          # Keras file -> safetensors, with measured behaviour
    >>> model = read_default(store.load("medical", "phydcm_ct"), 2)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from lucid.core.progress import Progress, report
from lucid.core.store import ModelStore, StoredModel, data_hash
from lucid.domains.medical.model import INPUT_SIZE, MEDICAL_MODELS, PORT_VERSION, PREPROCESSING, PhydcmNet
from lucid.domains.medical.reading import load_scan
from lucid.domains.medical.windowing import render_for_model
from lucid.imaging.classifier import ImageClassifier
from lucid.imaging.preprocess import ImagePreprocessing

DOMAIN = "medical"
WEIGHTS_FILE = "weights.safetensors"
# Scans are classified in float32 on every device, so the served outputs stay those of the validated
# port (within 5e-6 of the original network); bfloat16 moves probabilities by about 1e-2.
MEDICAL_PRECISION = "fp32"

#: phydcm's own preprocessing: squash to 224 x 224 (no crop), bilinear, scale to [0, 1], no normalisation.
PHYDCM_PREPROCESSING = ImagePreprocessing.from_config(
    {
        "input_size": (3, INPUT_SIZE, INPUT_SIZE),
        "interpolation": "bilinear",
        "mean": (0.0, 0.0, 0.0),
        "std": (1.0, 1.0, 1.0),
        "crop_pct": 1.0,
        "crop_mode": "squash",
    }
)


def phydcm_classifier(
    model: PhydcmNet, classes: list[str], device: torch.device | None = None
) -> ImageClassifier:
    """A phydcm network as a batched classifier with phydcm's preprocessing, in float32."""
    return ImageClassifier(model, PHYDCM_PREPROCESSING, classes, device=device, precision=MEDICAL_PRECISION)


def _sample_images() -> dict[str, np.ndarray]:
    """The pydicom sample slices windowed as the viewer shows them by default (for measured behaviour)."""
    from pydicom.data import get_testdata_file

    out = {}
    for name in ("MR_small.dcm", "CT_small.dcm"):
        path = get_testdata_file(name, download=False)
        if path:
            out[name] = render_for_model(load_scan(Path(path).read_bytes(), name), "file")
    return out


def _out_of_domain_images() -> dict[str, np.ndarray]:
    """Photographs with no scan in them, to show how confidently the demo models answer anyway."""
    import skimage.data

    return {name: getattr(skimage.data, name)() for name in ("retina", "coffee", "camera")}


def measure_demo_model(model: PhydcmNet, classes: list[str]) -> dict[str, Any]:
    """What can be measured offline without labelled scans: outputs on the bundled samples and the
    confidence given to photographs that are not scans at all."""
    classifier = phydcm_classifier(model, classes, torch.device("cpu"))
    rows = {}
    for group, images in (("sample", _sample_images()), ("not a scan", _out_of_domain_images())):
        for name, image in images.items():
            probs = classifier.predict_images([image])[0]
            rows[name] = {
                "kind": group,
                "prediction": classes[int(probs.argmax())],
                "confidence": round(float(probs.max()), 4),
            }
    return rows


def convert_default(store: ModelStore, name: str, progress: Progress = None) -> StoredModel:
    """Convert the phydcm Keras weights of ``name`` into the store (safetensors) with their measured
    behaviour; ``recipe_version`` (and, for stores written before it, ``port_version``) is the port's."""
    report(progress, 0.0, f"Converting {name} from Keras to safetensors")
    spec = MEDICAL_MODELS.get(name)
    asset = spec.extra["asset"]
    model = MEDICAL_MODELS.create(name)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    report(progress, 0.5, f"Measuring {name} on the bundled samples")
    meta = {
        "base_model": f"{asset.pip_name}:{asset.relative_path}",
        "kind": "phydcm",
        "classes": list(spec.labels),
        "port_version": PORT_VERSION,
        "recipe_version": PORT_VERSION,
        "preprocessing": PREPROCESSING,
        "data_hash": data_hash(asset.path().read_bytes()),
        "metrics": "not measurable offline (no labelled scans ship on any registry)",
        "measured": measure_demo_model(model, list(spec.labels)),
    }
    stored = store.save(DOMAIN, name, lambda folder: save_file(state, str(folder / WEIGHTS_FILE)), meta)
    report(progress, 1.0, f"{name} ready")
    return stored


def read_default(stored: StoredModel, num_classes: int) -> PhydcmNet:
    """The converted network of a stored demo model, in eval mode on the CPU."""
    model = PhydcmNet(num_classes)
    model.load_state_dict(load_file(stored.path / WEIGHTS_FILE))
    return model.eval()
