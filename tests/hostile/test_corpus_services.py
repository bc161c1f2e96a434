"""Every hostile file through the shared upload parsers: parsed correctly or refused clearly."""

import pytest

from lucid.core import archives as A
from lucid.core import data as D
from lucid.core.errors import InvalidInputError
from tests.hostile.corpus import build_corpus, by_kind

EXPECT_PARSED = {
    "semicolon.csv",
    "pipes.csv",
    "utf16.csv",
    "latin1.csv",
    "bom.csv",
    "formulas.csv",
    "xss.csv",
    "long_line.csv",
    "many_columns.csv",
    "numbers_as_text.csv",
    "xlsx_multi.xlsx",
    "odd.parquet",
    "emoji.txt",
}


def test_corpus_is_large_and_varied():
    corpus = build_corpus()
    assert len(corpus) >= 50
    assert len({f.name for f in corpus}) == len(corpus)
    assert {k for f in corpus for k in f.kinds} == {"table", "text", "image", "archive", "dicom", "nifti"}


@pytest.mark.parametrize("item", by_kind("table"), ids=lambda f: f.name)
def test_tables_parse_or_refuse_clearly(item):
    try:
        frame = D.read_table(item.data, item.name)
    except InvalidInputError as exc:
        assert item.name not in EXPECT_PARSED, f"{item.name} should parse: {exc}"
        assert len(str(exc)) > 10
        return
    assert item.name in EXPECT_PARSED, f"{item.name} ({item.what}) was accepted"
    assert len(frame) >= 1 and frame.shape[1] >= 1


def test_ragged_rows_named_in_message():
    item = next(f for f in by_kind("table") if f.name == "ragged.csv")
    with pytest.raises(InvalidInputError, match="Expected 3 fields in line 3, saw 5"):
        D.read_table(item.data, item.name)


def test_tables_content_is_right():
    files = {f.name: f for f in by_kind("table")}
    assert D.read_table(files["utf16.csv"].data, "utf16.csv")["text"].tolist() == ["schön", "mies"]
    assert D.read_table(files["latin1.csv"].data, "latin1.csv")["text"].tolist() == ["café crème"]
    assert D.read_table(files["semicolon.csv"].data, "semicolon.csv").columns.tolist() == ["text", "label"]
    xss = D.read_table(files["xss.csv"].data, "xss.csv")
    assert xss["text"][0].startswith("<script>")  # kept as text, escaped where shown
    safe = D.to_safe_csv(D.read_table(files["formulas.csv"].data, "formulas.csv")).decode("utf-8-sig")
    assert "'=HYPERLINK" in safe and "'@SUM" in safe and "'=1+1" in safe


@pytest.mark.parametrize("item", by_kind("image"), ids=lambda f: f.name)
def test_images_decode_or_refuse_clearly(item):
    ok = {"sixteen_bit.png", "cmyk.jpg", "alpha.png"}
    try:
        img = D.read_image(item.data, item.name)
    except InvalidInputError as exc:
        assert item.name not in ok, str(exc)
        return
    assert item.name in ok and img.mode == "RGB"


@pytest.mark.parametrize("item", by_kind("archive"), ids=lambda f: f.name)
def test_archives_read_or_refuse_clearly(item):
    refused = {"traversal.zip", "absolute.zip", "bomb.zip", "many_tiny.zip", "hidden_only.zip", "not_zip.zip"}
    try:
        contents = A.read_zip(item.data)
    except InvalidInputError as exc:
        assert item.name in refused, str(exc)
        return
    assert item.name not in refused
    assert all(".." not in m.path and not m.path.startswith("/") for m in contents.members)
    assert all(not m.name.startswith(".") for m in contents.members)
