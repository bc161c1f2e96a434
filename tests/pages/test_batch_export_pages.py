"""The batch job of the Image classification and Recommendations pages (through the domains'
``score_partition``): the same rows as the CLI and as the pages' own tables, on this server and on a
local Dask cluster."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage import data as skdata

from tests.pages.test_batch_export import DASK_LABEL, _export
from tests.pages.test_vision_page import _tiny_png

pytestmark = pytest.mark.slow  # both pages run their real default models (ImageNet, MovieLens)


def _captions(at) -> str:
    return " ".join(c.value for c in at.caption)


# ------------------------------------------------------------------------------------------- vision
def _photo_files() -> list[tuple[str, bytes]]:
    """Three small files in name order: a noise image, a corrupt PNG, a photo of coffee."""
    jpeg = io.BytesIO()
    Image.fromarray(skdata.coffee()).resize((96, 64)).save(jpeg, format="JPEG")
    return [
        ("a_noise.png", _tiny_png(1, 40)),
        ("b_broken.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40),
        ("c_coffee.jpg", jpeg.getvalue()),
    ]


def test_vision_export_has_the_pages_classes_and_skips_the_corrupt_file_as_the_cli_does(
    app_test, model_store, monkeypatch, tmp_path
):
    from lucid.cli import build_parser, request_from, run_score
    from lucid.domains import DOMAINS

    monkeypatch.delenv("LUCID_DASK_SCHEDULER", raising=False)
    monkeypatch.delenv("LUCID_DASK_WORKERS", raising=False)
    files = _photo_files()
    at = app_test("app_pages/vision.py", timeout=300)
    at.radio(key="vision_source").set_value("Upload your own").run()
    at.file_uploader(key="vision_upload").set_value([(n, b, "image/png") for n, b in files])
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    page_table = at.session_state["vision_predictions"]
    assert list(page_table["image"]) == ["a_noise.png", "c_coffee.jpg"]

    out = _export(at, "vision_batch")
    assert list(out["image"]) == ["a_noise.png", "c_coffee.jpg"]  # one row per good image, in order
    assert list(out["top1"]) == list(page_table["top1"]) and out.loc[1, "top1"] == "espresso"
    assert np.abs(out["probability"].to_numpy() - page_table["probability"].to_numpy()).max() < 1e-3
    assert "2 image(s) in the export; 1 file(s) skipped" in _captions(at)
    assert not any(c.startswith("shap_") for c in out.columns)  # explanations only when asked for

    # The CLI on the same files: the same table, byte for byte, and the corrupt file counted as skipped.
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, blob in files:
        (folder / name).write_bytes(blob)
    cli_out = tmp_path / "cli.csv"
    args = build_parser(DOMAINS["vision"]).parse_args(["score", str(folder), "--out", str(cli_out)])
    summary = run_score(DOMAINS["vision"], request_from(args), args)  # what `score` prints
    assert summary["scored"] == 2 and summary["skipped"] == 1 and summary["rows"] == 2
    assert cli_out.read_bytes() == at.session_state["vision_batch_export_result"][1].csv


@pytest.mark.slow
def test_vision_export_on_dask_equals_this_server_row_for_row(app_test, model_store, monkeypatch):
    monkeypatch.delenv("LUCID_DASK_SCHEDULER", raising=False)
    monkeypatch.setenv("LUCID_DASK_WORKERS", "2")
    at = app_test("app_pages/vision.py", timeout=300)  # the sample photos (chelsea, coffee), as PNG files
    assert not at.exception
    page_table = at.session_state["vision_predictions"]
    at.checkbox(key="vision_batch_explain").check()
    at.select_slider(key="vision_batch_evals").set_value(50).run()
    here = _export(at, "vision_batch")
    at.radio(key="vision_batch_engine").set_value(DASK_LABEL).run()
    assert "vision_batch_export_result" not in at.session_state  # another engine: the old file is dropped
    on_dask = _export(at, "vision_batch")
    assert "on a local Dask cluster (2 worker processes)" in _captions(at)
    pd.testing.assert_frame_equal(here, on_dask)
    assert list(here["image"]) == ["chelsea", "coffee"] and list(here["top1"]) == list(page_table["top1"])
    assert {"explained_class", "shap_base_value", "gradcam_faithfulness_10pct"} <= set(here.columns)
    assert list(here["explained_class"]) == list(here["top1"])


# ---------------------------------------------------------------------------------------- recommend
@pytest.fixture
def recommend_page(app_test, recommend_store, monkeypatch):
    """The recommendations page on the MovieLens default of ``recommend_store`` (tests/conftest.py)."""
    monkeypatch.setenv("LUCID_MODEL_DIR", str(recommend_store.root))
    at = app_test("app_pages/recommend.py", timeout=300)
    assert not at.exception
    return at


def _export_ids(at, key: str) -> pd.DataFrame:
    """The export, with user and item ids read as text (as the model holds them)."""
    _export(at, key)
    csv = at.session_state[f"{key}_export_result"][1].csv
    return pd.read_csv(io.BytesIO(csv), encoding="utf-8-sig", dtype={"user": str, "item": str})


def test_recommend_export_has_top_rows_per_user_in_order_and_the_pages_own_top_n(
    recommend_page,
    recommend_store,
    downloads_captured,
):
    from lucid.domains.recommend.service import DEFAULT_MODEL, RecommendService

    at = recommend_page
    top = 5
    # The page's own top 5 for user 196 (its CSV download holds the item ids).
    at.text_input(key="recommend_user_query").set_value("196").run()
    at.slider(key="recommend_n").set_value(top).run()
    assert not at.exception and not at.error
    own = pd.read_csv(io.BytesIO(downloads_captured["recommendations.csv"]), dtype={"user": str, "item": str})
    assert len(own) == top and set(own["user"]) == {"196"}

    at.slider(key="recommend_batch_top").set_value(top).run()
    out = _export_ids(at, "recommend_batch")
    users = RecommendService(recommend_store).load(DEFAULT_MODEL).user_ids
    assert list(out.columns) == ["user", "rank", "item", "title", "score", "reason"]
    assert out["user"].tolist() == [u for u in users for _ in range(top)]  # every user, in the model's order
    assert out["rank"].tolist() == list(range(1, top + 1)) * len(users)
    assert (out["reason"].str.len() > 10).all()
    mine = out[out["user"] == "196"].reset_index(drop=True)
    assert mine["item"].tolist() == own["item"].tolist()
    assert (
        mine["title"].tolist() == own["title"].tolist() and mine["reason"].tolist() == own["reason"].tolist()
    )
    assert np.abs(mine["score"].to_numpy() - own["score"].to_numpy()).max() < 1e-6

    # The users of a file instead: in the file's order, duplicates once; unknown ids are refused.
    at.radio(key="recommend_batch_users").set_value("The users of a file").run()
    at.file_uploader(key="recommend_batch_upload").set_value(
        ("log.csv", b"customer,item\n22,1\n 196,2\n22,3\n7,4\n", "text/csv")
    )
    at.run()
    assert at.selectbox(key="recommend_batch_user_col").value == "customer"
    assert "recommend_batch_export_result" not in at.session_state  # other users: the old file is dropped
    picked = _export_ids(at, "recommend_batch")
    assert picked["user"].tolist() == [u for u in ("22", "196", "7") for _ in range(top)]
    pd.testing.assert_frame_equal(picked[picked["user"] == "196"].reset_index(drop=True), mine)
    at.file_uploader(key="recommend_batch_upload").set_value(
        ("log.csv", b"customer\n22\nnobody\n", "text/csv")
    )
    at.run()
    assert any("1 user ids are unknown to the model" in e.value for e in at.error)
