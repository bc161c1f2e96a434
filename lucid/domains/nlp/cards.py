"""The model cards of the review-sentiment domain: where a model came from, its licence and data, its
held-out metrics beside the TF-IDF baseline, and in which precision this server computes it.

Example:
    >>> meta = store.load("nlp", "review_sentiment").metadata
    >>> card = model_card("review_sentiment", meta, torch.device("cpu"))
    >>> card.sections()["Held-out test metrics"]
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pandas as pd
import torch

from lucid.core.device import PRECISIONS, inference_dtype, precision_name
from lucid.domains.base import ModelCard
from lucid.domains.nlp.model import ENCODER, nlp_registry

EXPLANATIONS = (
    "One text: SHAP over its word pieces with shap's text masker and hierarchy (Partition "
    "explainer, 500 evaluations: the values shap.Explainer(pipeline) gives by default, computed "
    "in batches), summed into words; each word's share of the class's probability (or log-odds); "
    "shares plus the base value (every piece masked) add up to the output. Word drivers of a "
    "batch: faster whole-word Partition SHAP in log-odds, averaged per word."
)


def model_card(name: str, meta: Mapping[str, Any], device: torch.device) -> ModelCard:
    """The card of the stored model ``name`` (a registered default or a user's model) from its metadata.

    Args:
        name: the model's name.
        meta: its store metadata.
        device: where this server computes (the card says when its precision differs from the
            one the test metrics were measured in).
    """
    if name in nlp_registry:
        spec = nlp_registry.get(name)
        card = ModelCard(
            model=spec.title,
            source=spec.source,
            licence=spec.licence,
            data=spec.data,
            metrics=metrics_table(meta),
            caveats=[spec.description],
        )
    else:
        card = ModelCard(
            model=f"{name} (trained by a user on {meta.get('trained_on', '?')})",
            source=f"Fine-tuned from {meta.get('base_model', 'MiniLM-L6')}",
            licence=ENCODER.licence + "; the fine-tuned weights belong to whoever trained them",
            data=(
                f"{meta.get('data', 'uploaded texts')}: {meta.get('n_train', '?')} training, "
                f"{meta.get('n_validation', 0)} validation and "
                f"{meta.get('n_test', '?')} held-out test texts"
            ),
            metrics=metrics_table(meta),
            caveats=[
                "Trained on the uploaded texts only; small training sets give unstable models. Reads the "
                f"first {meta.get('config', {}).get('max_length', 128)} word pieces of each text."
            ],
        )
    details = card.details
    details["Classes"] = ", ".join(meta.get("labels", []))
    precision = meta.get("precision", "float32")
    details["Precision"] = precision_note(precision, precision_name(inference_dtype(device)))
    for key, title in (
        ("float32_metrics", "Same model in full precision (float32), same test texts"),
        ("int8_metrics", "int8 option (faster on CPU), same test texts"),
    ):
        other = meta.get(key)
        if other:
            # Models stored by older versions call the key agreement_with_float.
            agreement = other.get("agreement_with_served", other.get("agreement_with_float"))
            details[title] = {
                "accuracy": other["accuracy"],
                "macro-F1": other["macro_f1"],
                "ROC AUC": other["roc_auc"],
                f"agreement with the {precision} model": agreement,
            }
    details["Training"] = (
        f"{meta.get('n_train', '?')} texts, {meta.get('train_steps', '?')} steps in "
        f"{meta.get('train_seconds', '?')} s; recipe {json.dumps(meta.get('config', {}))}"
    )
    details["Explanations"] = EXPLANATIONS
    return card


def precision_note(measured: str, served: str) -> str:
    """What the card says about precision: the metrics were measured in ``measured``, this server
    computes in ``served`` (and how to serve the model exactly as measured when they differ)."""
    if served == measured:
        return (
            f"Computes in {measured} here (weights stored in float32); the test metrics above were "
            f"measured in {measured}."
        )
    code = next((k for k, v in PRECISIONS.items() if precision_name(v) == measured), "fp32")
    return (
        f"Computes in {served} on this server (weights stored in float32); the test metrics above "
        f"were measured in {measured}, on the machine that trained it. LUCID_PRECISION={code} "
        "serves it exactly as measured."
    )


def metrics_table(meta: Mapping[str, Any]) -> pd.DataFrame:
    """Held-out metrics of a stored model beside the TF-IDF baseline on the same split."""
    rows = []
    ours = meta.get("metrics") or {}
    base = meta.get("baseline_metrics") or {}
    for key, label in (("accuracy", "accuracy"), ("macro_f1", "macro-F1"), ("roc_auc", "ROC AUC")):
        rows.append(
            {
                "metric": label,
                "this model": ours.get(key),
                "TF-IDF baseline (same training texts)": base.get(key),
            }
        )
    table = pd.DataFrame(rows)
    full = meta.get("baseline_all_training_texts")
    if full:
        n = meta.get("baseline_all_training_n", "all")
        table[f"TF-IDF baseline ({n:,} training texts)"] = [
            full.get("accuracy"),
            full.get("macro_f1"),
            full.get("roc_auc"),
        ]
    return table
