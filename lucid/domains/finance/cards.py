"""The model card of a credit-risk model, made from the facts its training wrote into the metadata.

Example:
    >>> card = credit_card("german_credit", store.load("finance", "german_credit").metadata)
    >>> card.sections()["Held-out test metrics"]["ROC AUC"]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lucid.domains.base import ModelCard

CAVEATS = [
    "Scores reflect the population the model was trained on; check the Monitor tab for drift.",
    "Reason codes are statistical attributions (SHAP), not causes, and a model is one input to a "
    "credit decision, not the decision; review fairness before any use on protected groups.",
]


def _gate_line(gate: Any) -> dict[str, str]:
    """The quality gate a user's model went through (defaults have none: they are the reference)."""
    if not isinstance(gate, Mapping):
        return {}
    low, high = gate["model_ci"]
    outcome = "passed" if gate["passed"] else "not passed; saved on the user's explicit choice"
    return {
        "Quality gate": f"{outcome}: {gate['metric']} {gate['model']:.3f} (95% CI {low:.3f} to {high:.3f}) "
        f"against {gate['baseline']:.3f} for {gate['baseline_name']}, on {gate['n_test']:,} held-out rows"
    }


def credit_card(name: str, meta: Mapping[str, Any]) -> ModelCard:
    """The card of the model ``name`` from its stored metadata (held-out metrics on the 30% test)."""
    metrics, baseline = meta["metrics"], meta["baseline"]
    return ModelCard(
        model=meta.get("title", name),
        source=f"trained by Lucid's own recipe ({meta.get('base_model', 'XGBoost')}), never downloaded",
        licence=meta.get("licence", ""),
        data=meta.get("training_data", ""),
        metrics={
            "ROC AUC": metrics["auc"],
            "Gini": metrics["gini"],
            "KS": metrics["ks"],
            "Brier score": metrics["brier"],
            "Logistic-regression baseline AUC": baseline["auc"],
            "Test rows": f"{meta.get('rows_test', 0):,}",
        },
        details={
            "Data source": meta.get("source", ""),
            "Trained on": f"{meta.get('created', '')} ({meta.get('device', 'cpu')}, "
            f"{meta.get('training_seconds', '?')} s)",
            "Target": f"{meta['target']} (default = {meta['positive_label']})",
            "Split": meta.get("split", ""),
            "Data hash / recipe": f"{meta.get('data_hash', '')} / recipe v{meta.get('recipe_version', '')}",
            **_gate_line(meta.get("quality_gate")),
        },
        caveats=list(CAVEATS),
    )
