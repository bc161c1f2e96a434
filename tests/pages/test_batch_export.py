"""The pages' batch job (score + explain every row) on this server and on a local Dask cluster."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from lucid.core.store import ModelStore
from lucid.domains.finance.service import FinanceService

DASK_LABEL = "A local Dask cluster (2 worker processes)"


@pytest.fixture
def finance_store(tmp_path_factory, monkeypatch):
    root = tmp_path_factory.getbasetemp() / "finance-store"  # shared with the finance page tests
    FinanceService(ModelStore(root)).load("german_credit")
    monkeypatch.setenv("LUCID_MODEL_DIR", str(root))
    return root


def _export(at, key: str) -> pd.DataFrame:
    at.button(key=f"{key}_export_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    held = at.session_state[f"{key}_export_result"]
    return pd.read_csv(io.BytesIO(held[1].csv))


def test_without_a_cluster_the_export_runs_here_and_says_how_to_add_one(app_test, finance_store, monkeypatch):
    monkeypatch.delenv("LUCID_DASK_SCHEDULER", raising=False)
    monkeypatch.delenv("LUCID_DASK_WORKERS", raising=False)
    at = app_test("app_pages/finance.py")
    assert not any(r.key == "finance_batch_engine" for r in at.radio)
    assert any("LUCID_DASK_SCHEDULER" in c.value for c in at.caption)
    out = _export(at, "finance_batch")
    assert len(out) == 200 and {"pd", "reason_1"} <= set(out.columns)
    assert not any(c.startswith("shap_") for c in out.columns)  # SHAP columns only when asked for


@pytest.mark.slow
def test_finance_export_on_dask_equals_this_server_row_for_row(app_test, finance_store, monkeypatch):
    monkeypatch.delenv("LUCID_DASK_SCHEDULER", raising=False)
    monkeypatch.setenv("LUCID_DASK_WORKERS", "2")
    at = app_test("app_pages/finance.py")
    page_table = next(d.value for d in at.dataframe if "reason_1" in d.value.columns)
    at.checkbox(key="finance_batch_explain").check().run()
    here = _export(at, "finance_batch")
    at.radio(key="finance_batch_engine").set_value(DASK_LABEL).run()
    assert "finance_batch_export_result" not in at.session_state  # another engine: the old file is dropped
    on_dask = _export(at, "finance_batch")
    assert "on a local Dask cluster (2 worker processes)" in " ".join(c.value for c in at.caption)
    pd.testing.assert_frame_equal(here, on_dask)
    assert len(here) == 200 and {"reason_1", "reason_4"} <= set(here.columns)
    assert any(c.startswith("shap_") for c in here.columns)
    # The exported PDs are the page's own, in the same order.
    shown = page_table.sort_index()["pd"].to_numpy()
    assert abs(here["pd"].to_numpy() - shown).max() < 1e-6


def test_nlp_export_scores_every_row_in_order_with_its_strongest_words(app_test, model_store):
    import torch

    from lucid.domains.nlp.finetune import fine_tune
    from lucid.domains.nlp.model import DEFAULT_MODEL, RECIPE_VERSION, TrainConfig, tiny_classifier
    from tests.pages.test_nlp_page import reviews

    data = reviews(120, seed=0)
    clf = tiny_classifier(seed=0, device=torch.device("cpu"))
    y = (data["label"] == "pos").astype(int).to_numpy()
    fine_tune(
        clf, data["comment"].tolist(), y, TrainConfig(epochs=3, learning_rate=5e-3, warmup_fraction=0.0)
    )
    model_store.save("nlp", DEFAULT_MODEL, clf.save, {"labels": clf.labels, "recipe_version": RECIPE_VERSION})

    batch = reviews(12, seed=5)
    batch.loc[3, "comment"] = ""
    batch.loc[7, "comment"] = '=HYPERLINK("http://x") <b>great</b> dress'
    at = app_test("app_pages/nlp.py", timeout=300)
    at.file_uploader(key="nlp_batch_upload").set_value(
        ("batch.csv", batch.to_csv(index=False).encode(), "text/csv")
    )
    at.run()
    at.selectbox(key="nlp_batch_column").set_value("comment").run()
    at.checkbox(key="nlp_batch_explain").check().run()
    out = _export(at, "nlp_batch")
    assert len(out) == 12 and list(out["row"]) == list(range(12))
    assert out.loc[3, "status"] == "empty" and out["status"].drop(index=3).eq("scored").all()
    assert str(out.loc[7, "comment"]).startswith("'=")  # the formula is neutralised in the download
    expected = clf.predict_proba([t for t in batch["comment"] if t])[:, clf.labels.index("positive")]
    got = out.loc[out["status"] == "scored", "p_positive"].to_numpy()
    assert abs(got - expected).max() < 1e-3
    words = out.loc[0, "top_words"]
    assert isinstance(words, str) and len(words.split("; ")) >= 3
