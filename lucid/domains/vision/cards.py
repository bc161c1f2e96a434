"""Model cards of the vision domain: the packaged ImageNet default and the models users fine-tuned.

Example:
    >>> from lucid.domains.vision.cards import default_card
    >>> card = default_card("efficientnet_lite0", measured=sample_check_text(classifier))
    >>> card.sections()["Licence"]
    'Apache-2.0'
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lucid.core.device import inference_dtype, precision_name
from lucid.domains.base import ModelCard
from lucid.domains.vision.data import sample_images
from lucid.domains.vision.model import VISION_MODELS
from lucid.imaging.classifier import ImageClassifier, top_k_from_probabilities

#: The ImageNet default the fine-tuned models start from.
BASE_MODEL = "efficientnet_lite0"


def sample_check_text(clf: ImageClassifier) -> str:
    """Top-3 on the 'chelsea' and 'coffee' photos in the served precision, and how far float32 differs."""
    photos = sample_images(["chelsea", "coffee"])
    probs = clf.predict_images(list(photos.values()))
    served = precision_name(inference_dtype(clf.device, clf.precision))
    parts = []
    for photo, top in zip(photos, top_k_from_probabilities(probs, clf.class_names, 3), strict=True):
        parts.append(f"'{photo}' -> " + " / ".join(f"{label} {p:.2f}" for _, label, p in top))
    text = "; ".join(parts) + f" (computed in {served})"
    if served != "float32":
        full = ImageClassifier(
            clf.model, clf.preprocessing, clf.class_names, device=clf.device, precision="fp32"
        )
        reference = full.predict_images(list(photos.values()))
        same = bool((reference.argmax(1) == probs.argmax(1)).all())
        text += (
            f"; in float32 the top class is {'the same' if same else 'different'} and probabilities "
            f"differ by at most {float(np.abs(reference - probs).max()):.3f}"
        )
    return text + "."


def default_card(name: str, *, measured: str) -> ModelCard:
    """The card of a registered ImageNet model; ``measured`` is its :func:`sample_check_text`."""
    spec = VISION_MODELS.get(name)
    return ModelCard(
        model=spec.title,
        source=spec.source,
        licence=spec.licence,
        data=spec.data,
        metrics={
            "Published ImageNet top-1": (
                f"{spec.extra['published_top1']:.1f}% ({spec.extra['published_source']})"
            ),
            "Measured here": (
                "No ImageNet validation set ships offline, so top-1 was not re-measured. On the bundled "
                "sample photos, as served now: " + measured
            ),
        },
        details={
            "What it does": spec.description,
            "Architecture": f"timm {spec.extra['architecture']} (preprocessing from timm's data config)",
            "Explanations": (
                "SHAP Partition explainer with a blur image masker (values add up to the class "
                "probability minus the blurred image's); Grad-CAM on layer "
                f"'{spec.extra['gradcam_layer']}'."
            ),
        },
        caveats=[spec.extra["limits"]],
    )


def saved_card(name: str, meta: dict[str, Any]) -> ModelCard:
    """The card of a model a user fine-tuned, from its stored metadata (metrics on held-out test images)."""
    metrics = meta.get("metrics", {})
    config = meta.get("config", {})
    per_class = pd.DataFrame([{"class": c, **v} for c, v in metrics.get("per_class", {}).items()])
    base = VISION_MODELS.get(BASE_MODEL)
    return ModelCard(
        model=f"{name} (fine-tuned by a user)",
        source=f"{meta.get('base_model')} with ImageNet weights ({base.source}), fine-tuned here",
        licence=f"{base.licence} (the base model's weights)",
        data=(
            f"The user's labelled images, split train/validation/test: {meta.get('split_sizes')}; "
            f"{config.get('mode', '?')} fine-tuning, {config.get('epochs', '?')} epochs"
        ),
        metrics={
            "Test accuracy (held-out)": metrics.get("accuracy"),
            "Majority-class baseline on the same test images": metrics.get("majority_baseline_accuracy"),
            **_gate_line(meta.get("quality_gate")),
        },
        details={
            "Classes": ", ".join(meta.get("class_names", [])),
            "Per-class precision and recall (test)": per_class,
            "Data fingerprint": meta.get("data_hash"),
            "Created": meta.get("created"),
            "Recipe version": meta.get("recipe_version"),
        },
        caveats=[
            "Knows only the classes it was trained on and always picks one of them; accuracy holds only "
            "for images like the training ones."
        ],
    )


def _gate_line(gate: Any) -> dict[str, str]:
    """The quality gate stored with a model, in one line (models saved before the gate have none)."""
    if not isinstance(gate, dict):
        return {}
    low, high = gate["model_ci"]
    outcome = "passed" if gate["passed"] else "did not pass; saved on the user's explicit choice"
    return {
        "Quality check": (
            f"{outcome}: accuracy {gate['model']:.3f} (95% CI {low:.3f} to {high:.3f}) on {gate['n_test']} "
            f"held-out images, against {gate['baseline']:.3f} for {gate['baseline_name']}; "
            f"chance {gate['chance']:.3f}"
        )
    }
