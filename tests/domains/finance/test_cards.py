"""The model card of a credit-risk model: held-out metrics, data, licence and limits."""

import pytest

from lucid.core.errors import ModelNotFoundError
from lucid.domains.base import ModelCard


def test_card_shows_the_held_out_metrics_the_model_was_stored_with(service, german):
    card = service.card("german_credit")
    assert isinstance(card, ModelCard) and card.model == german.metadata["title"]
    assert card.metrics["ROC AUC"] == german.metadata["metrics"]["auc"]
    assert card.metrics["Logistic-regression baseline AUC"] == german.metadata["baseline"]["auc"]
    assert card.metrics["Test rows"] == "300"
    assert card.licence.startswith("MIT") and "never downloaded" in card.source
    sections = card.sections()
    assert sections["Target"] == "creditability (default = bad)"
    assert "recipe v" in sections["Data hash / recipe"] and "fairness" in sections["Limits"]


def test_card_of_an_unknown_model_lists_the_valid_names(service):
    with pytest.raises(ModelNotFoundError, match="german_credit"):
        service.card("no-such-model")
