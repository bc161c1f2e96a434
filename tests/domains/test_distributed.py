"""``score`` of the NLP, vision, medical and recommendation domains on a 2-process Dask cluster equals
the single-process run row for row (values, order, columns), explanations included.

One local cluster is shared by the tests of this module (``--scheduler``); it is started after the
module's model store is set in ``LUCID_MODEL_DIR``, so the workers load the same models.
"""

from __future__ import annotations

import io
import json
import logging
import random
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lucid.cli import main
from tests.fixtures.medical.builders import make_dicom, make_zip


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    """The module's model store; LUCID_MODEL_DIR points at it for this process and the workers."""
    root = tmp_path_factory.mktemp("models")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LUCID_MODEL_DIR", str(root))
        yield root


@pytest.fixture(scope="module")
def scheduler(store_dir):
    """Address of a local cluster of 2 worker processes (1 thread each), shared by the module."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=logging.ERROR,
    ) as cluster:
        yield cluster.scheduler_address


def _score(capsys, domain: str, data: Path, out: Path, *options: str) -> tuple[pd.DataFrame, dict]:
    assert main([domain, "score", str(data), "--out", str(out), *options]) == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return pd.read_csv(out, encoding="utf-8-sig", keep_default_na=False), summary


def _csv_round_trip(frame: pd.DataFrame) -> pd.DataFrame:
    from lucid.core.data import to_safe_csv

    return pd.read_csv(io.BytesIO(to_safe_csv(frame)), encoding="utf-8-sig", keep_default_na=False)


def _local_and_dask(capsys, scheduler, tmp_path, domain, data, *options) -> tuple[pd.DataFrame, dict]:
    """Score on both engines with the same options; asserts equal tables and returns the local one."""
    local, local_summary = _score(capsys, domain, data, tmp_path / "local.csv", *options, "--engine", "local")
    dask, dask_summary = _score(
        capsys,
        domain,
        data,
        tmp_path / "dask.csv",
        *options,
        "--engine",
        "dask",
        "--workers",
        "2",
        "--scheduler",
        scheduler,
    )
    assert local_summary["engine"] == "local" and dask_summary["engine"] == "dask"
    assert local_summary["partitions"] == dask_summary["partitions"] >= 3
    pd.testing.assert_frame_equal(local, dask, check_exact=True)
    # The raw bytes agree too (same CSV text, formulas neutralised the same way).
    assert (tmp_path / "local.csv").read_bytes() == (tmp_path / "dask.csv").read_bytes()
    run_facts = {"engine", "workers", "seconds", "texts_per_second", "out"}
    assert {k: v for k, v in local_summary.items() if k not in run_facts} == {
        k: v for k, v in dask_summary.items() if k not in run_facts
    }
    return local, local_summary


def test_every_domain_scores_by_partitions_with_its_own_partition_size():
    from lucid.cli import build_parser
    from lucid.domains import DOMAINS

    expected = {"finance": 2_000, "nlp": 500, "vision": 32, "medical": 64, "recommend": 2_000}
    assert set(DOMAINS) == set(expected)
    for name, rows in expected.items():
        args = build_parser(DOMAINS[name]).parse_args(["score", "in.csv", "--out", "out.csv"])
        assert (args.partition_rows, args.engine) == (rows, "local")
        assert DOMAINS[name].batch.partition_rows == rows


def test_reproducible_shap_ignores_the_random_history_and_restores_it():
    import torch

    from lucid.domains.nlp.explain import explain_words, split_words
    from lucid.domains.nlp.model import tiny_classifier
    from lucid.explain.explanation import reproducible_shap

    clf = tiny_classifier(seed=0, device=torch.device("cpu"))
    tokens = split_words(clf, "the dress really dress love fit was great but the zip broke")
    values = []
    for draws in (0, 3, 11):
        np.random.randn(draws)
        before = np.random.get_state()[1].copy()
        with reproducible_shap():
            values.append(np.asarray(explain_words(clf, tokens, 1, max_evals=40)[0].values))
        assert (np.random.get_state()[1] == before).all()  # the caller's generator is put back
    assert all((v == values[0]).all() for v in values)


# ---------------------------------------------------------------------------------------------- NLP


@pytest.mark.slow
def test_nlp_score_explain_on_dask_equals_local(store_dir, scheduler, tmp_path, capsys):
    import torch

    from lucid.core.store import ModelStore
    from lucid.domains.nlp.model import RECIPE_VERSION, tiny_classifier

    clf = tiny_classifier(seed=0, device=torch.device("cpu"))
    meta = {"labels": clf.labels, "recipe_version": RECIPE_VERSION, "metrics": {}, "baseline_metrics": {}}
    ModelStore(store_dir).save("nlp", "tiny-dist", clf.save, meta)
    rng = random.Random(3)
    words = ["great", "awful", "dress", "fit", "zip", "broke", "love", "cheap", "the", "was", "really"]
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 9))) for _ in range(13)]
    texts[1] = ""  # an empty text is kept and marked, not scored
    texts[2] = "=HYPERLINK('http://x') love it"
    texts[6:9] = ["", "", ""]  # with 3 rows per partition, one partition holds only empty texts
    data = tmp_path / "reviews.csv"
    pd.DataFrame({"id": range(len(texts)), "text": texts}).to_csv(data, index=False)
    options = ["--model", "tiny-dist", "--text-col", "text", "--explain", "--explain-evals", "40"]
    table, summary = _local_and_dask(
        capsys, scheduler, tmp_path, "nlp", data, *options, "--partition-rows", "3"
    )
    assert summary["partitions"] == 5 and summary["rows"] == 13
    assert summary["scored"] == 9 and summary["empty"] == 4
    assert table["row"].tolist() == list(range(13))  # input order
    assert table["text"].tolist() == [("'" + t if t.startswith("=") else t) for t in texts]
    assert list(table.columns[:4]) == ["row", "text", "status", "label"]
    assert (table["status"] == np.where([bool(t) for t in texts], "scored", "empty")).all()
    for text, top in zip(texts, table["top_words"], strict=True):  # up to 5 words of the text itself
        shown = [w.rsplit(" ", 1)[0].strip() for w in top.split("; ")] if top else []
        assert (0 < len(shown) <= 5) == bool(text) and all(w in text for w in shown)
    # The scores are those of the service's own batch call on all texts at once (the former path).
    from lucid.domains.nlp.service import NLPService

    direct = NLPService().score(texts, "tiny-dist").table.drop(columns="text")
    direct.insert(1, "text", texts)
    expected = _csv_round_trip(direct)
    pd.testing.assert_frame_equal(table[expected.columns], expected, check_exact=False, rtol=1e-5)


# ------------------------------------------------------------------------------------------- vision


def _png(arr: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(arr).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.slow
def test_vision_score_explain_on_dask_equals_local(scheduler, tmp_path, capsys):
    from lucid.domains.vision.data import sample_images

    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for name, img in sample_images(["chelsea", "coffee"]).items():
        img.resize((128, 128)).save(folder / "sub" / f"{name}.jpg")
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(folder / "more.zip", "w") as zf:
        zf.writestr("in/noise.png", _png(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)))
        zf.writestr("in/readme.md", "not an image")
        zf.writestr("in/.hidden.png", b"x")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (folder / "notes.txt").write_text("=cmd|' /C calc'!A0")
    options = ["--explain", "--max-evals", "32", "--top-k", "3", "--partition-rows", "3"]
    table, summary = _local_and_dask(capsys, scheduler, tmp_path, "vision", folder, *options)
    # Input order (sorted folder, zip members in place), the 4 files that are not images left out.
    assert table["image"].tolist() == ["more.zip/in/noise.png", "sub/chelsea.jpg", "sub/coffee.jpg"]
    assert summary["scored"] == 3 and summary["skipped"] == 4 and summary["partitions"] == 3
    assert list(table.columns[:5]) == ["image", "top1", "probability", "class_1", "prob_1"]
    assert "prob_3" in table and "prob_4" not in table and "gradcam_faithfulness_10pct" in table
    assert table["shap_strongest_region_row_of_3"].between(1, 3).all()
    assert table.loc[table["image"] == "sub/coffee.jpg", "top1"].item() == "espresso"
    # The former path (the page's upload reader, then one batched call) skips and classifies the same.
    from lucid.core.archives import files_from_path
    from lucid.domains.vision.data import read_uploaded_images
    from lucid.domains.vision.service import VisionService

    uploaded = read_uploaded_images(files_from_path(str(folder)))
    assert len(uploaded.problems) == summary["skipped"]
    direct = VisionService().classify(list(zip(uploaded.names, uploaded.images, strict=True)), k=3)
    expected = _csv_round_trip(direct)
    pd.testing.assert_frame_equal(table[expected.columns], expected, check_exact=False, rtol=1e-5)


# ------------------------------------------------------------------------------------------ medical


@pytest.mark.slow
def test_medical_score_explain_on_dask_equals_local(scheduler, tmp_path, capsys):
    from pydicom.data import get_testdata_file

    ct = Path(get_testdata_file("CT_small.dcm", download=False)).read_bytes()
    pixels = np.random.default_rng(1).integers(0, 3000, (5, 32, 32)).astype(np.uint16)
    files = {"scans/broken.dcm": b"not dicom" * 30, "scans/CT_small.dcm": ct}
    files |= {f"scans/{i}.dcm": make_dicom(pixels[i]) for i in range(5)}
    data = tmp_path / "scans.zip"
    data.write_bytes(make_zip(files))
    options = ["--model", "phydcm_ct", "--explain", "--partition-rows", "2"]
    table, summary = _local_and_dask(capsys, scheduler, tmp_path, "medical", data, *options)
    assert table["file"].tolist() == list(files)  # input order
    assert summary["scored"] == 6 and summary["failed"] == 1 and summary["partitions"] == 4
    assert list(table.columns) == [
        "file",
        "prediction",
        "p_notumor",
        "p_tumor",
        "error",
        "gradcam_peak_row",
        "gradcam_peak_col",
    ]
    assert "not a DICOM file" in table.loc[0, "error"] and (table.loc[1:, "error"] == "").all()
    ok = table.loc[1:]
    np.testing.assert_allclose(ok["p_notumor"].astype(float) + ok["p_tumor"].astype(float), 1.0, atol=1e-4)
    # The same table as the service's own batch call on all files at once (the CLI's former path).
    from lucid.domains.medical.service import MedicalService

    direct = MedicalService().score_files(list(files.items()), "phydcm_ct", explain=True)
    pd.testing.assert_frame_equal(_csv_round_trip(direct), table, check_exact=True)


# ---------------------------------------------------------------------------------------- recommend


def _interactions(n_users: int = 40, n_items: int = 30, per_user: int = 10, seed: int = 0) -> pd.DataFrame:
    """Two taste groups: even users mostly rate the first half of the items highly, odd users the rest."""
    rng = np.random.default_rng(seed)
    half = n_items // 2
    rows = []
    for u in range(n_users):
        own = 0 if u % 2 == 0 else half
        picks = set()
        while len(picks) < per_user:
            picks.add(own + int(rng.integers(half)) if rng.random() < 0.85 else int(rng.integers(n_items)))
        for k, item in enumerate(sorted(picks)):
            liked = (item >= half) == (own == half)
            rating = int(rng.integers(4, 6) if liked else rng.integers(1, 4))
            rows.append({"user": f"u{u}", "item": f"i{item}", "rating": rating, "time": 1_700_000_000 + k})
    return pd.DataFrame(rows)


@pytest.mark.slow
def test_recommend_score_on_dask_equals_local(store_dir, scheduler, tmp_path, capsys):
    from lucid.domains.recommend.data import prepare_interactions
    from lucid.domains.recommend.model import BPRConfig
    from lucid.domains.recommend.service import RecommendService, TrainConfig

    tiny = TrainConfig(
        bpr=BPRConfig(dim=8, epochs=40, batch_size=256, lr=0.05), n_candidates=15, ranker_rounds=20
    )
    data = prepare_interactions(
        _interactions(), user_col="user", item_col="item", rating_col="rating", timestamp_col="time"
    )
    RecommendService().train(data, "tiny-shop", config=tiny)
    users = [f"u{k}" for k in (7, 3, 30, 3, 12, 0, 25, 18, 39, 1, 22)]  # u3 twice: scored once
    (tmp_path / "users.csv").write_text("user\n" + "\n".join(users) + "\n")
    options = ["--model", "tiny-shop", "--top", "4", "--explain", "--partition-rows", "3"]
    table, summary = _local_and_dask(
        capsys, scheduler, tmp_path, "recommend", tmp_path / "users.csv", *options
    )
    order = list(dict.fromkeys(users))
    assert summary["users"] == 10 and summary["rows"] == 40 and summary["partitions"] == 4
    assert list(table.columns) == ["user", "rank", "item", "title", "score", "reason"]
    assert table["user"].tolist() == [u for u in order for _ in range(4)]  # input order, 4 each
    assert table["rank"].tolist() == [1, 2, 3, 4] * 10
    assert (table["reason"].str.len() > 0).all()
    # The same table as one call for all the users at once (the CLI's former path).
    direct = RecommendService().load("tiny-shop").recommend_users(order, 4, reasons=True)
    pd.testing.assert_frame_equal(_csv_round_trip(direct), table, check_exact=True)
