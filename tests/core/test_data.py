import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lucid.core import data as D
from lucid.core.errors import InvalidInputError


# ---------------------------------------------------------------- tables
def test_csv_semicolon_latin1_is_sniffed():
    raw = "name;city;amount\nJosé;Zürich;1,5\nAnna;Köln;2\n".encode("latin-1")
    df = D.read_table(raw, "x.csv")
    assert list(df.columns) == ["name", "city", "amount"]
    assert df.loc[0, "city"] == "Zürich"
    assert df.loc[0, "name"] == "José"


def test_csv_utf16_with_bom_and_tabs():
    raw = "a\tb\n1\t2\n3\t4\n".encode("utf-16")
    df = D.read_table(raw, "x.tsv")
    assert df["b"].tolist() == [2, 4]


def test_utf8_bom_stripped_from_header():
    df = D.read_table("\ufeffid,v\n1,2\n".encode(), "x.csv")
    assert list(df.columns) == ["id", "v"]


def test_excel_and_parquet_roundtrip():
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    buf = io.BytesIO()
    frame.to_excel(buf, index=False)
    assert D.read_table(buf.getvalue(), "f.xlsx")["b"].tolist() == ["x", "y"]
    buf = io.BytesIO()
    frame.to_parquet(buf)
    assert D.read_table(buf.getvalue(), "f.parquet")["a"].tolist() == [1, 2]


def test_extension_that_lies_is_read_by_content():
    frame = pd.DataFrame({"a": [1.5, 2.5]})
    buf = io.BytesIO()
    frame.to_parquet(buf)
    assert D.read_table(buf.getvalue(), "really.csv")["a"].tolist() == [1.5, 2.5]


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"", "empty"),
        (b"   \n\n", "empty"),
        (bytes(range(256)) * 40, "binary"),
        (b"a,a,b\n1,2,3\n", "more than once"),
        (b"a,b\n", "no data rows"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "binary"),
    ],
)
def test_bad_tables_are_refused_clearly(raw, message):
    with pytest.raises(InvalidInputError, match=message):
        D.read_table(raw, "x.csv")


def test_fake_xlsx_is_refused():
    with pytest.raises(InvalidInputError, match="not a valid xlsx"):
        D.read_table(b"hello,world\n1,2\n", "x.xlsx")


def test_row_limit_is_stated():
    raw = ("v\n" + "1\n" * 50).encode()
    with pytest.raises(InvalidInputError, match="limit is 10"):
        D.read_table(raw, "x.csv", max_rows=10)


def test_formula_cells_are_neutralised_but_numbers_kept():
    df = pd.DataFrame({"t": ['=HYPERLINK("http://x")', "+1", "@SUM(A1)", "ok", "-2"], "n": [-1, 2, 3, 4, 5]})
    safe = D.neutralise_formulas(df)
    assert safe["t"].tolist() == ['\'=HYPERLINK("http://x")', "'+1", "'@SUM(A1)", "ok", "'-2"]
    assert safe["n"].tolist() == [-1, 2, 3, 4, 5]
    assert D.to_safe_csv(df).decode("utf-8-sig").splitlines()[1].startswith("\"'=HYPERLINK")


# ---------------------------------------------------------------- images
def _png(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (40, 20), "red")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    out = D.read_image(_png(img, "JPEG", exif=exif), "photo.jpg")
    assert out.size == (20, 40)


def test_modes_converted_to_rgb():
    sixteen = Image.fromarray(np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16))
    out = np.asarray(D.read_image(_png(sixteen)))
    assert out.shape == (32, 32, 3) and out.min() == 0 and out.max() == 255
    rgba = Image.new("RGBA", (32, 32), (255, 0, 0, 0))  # fully transparent red -> white
    assert np.asarray(D.read_image(_png(rgba)))[0, 0].tolist() == [255, 255, 255]
    cmyk = Image.new("CMYK", (32, 32), (0, 255, 255, 0))  # pure red in CMYK
    assert np.asarray(D.read_image(_png(cmyk, "JPEG")))[5, 5, 0] > 200
    pal = Image.new("P", (32, 32))
    pal.putpalette([0, 255, 0] * 256)
    assert np.asarray(D.read_image(_png(pal)))[0, 0].tolist() == [0, 255, 0]


def test_gif_first_frame():
    frames = [Image.new("RGB", (32, 32), c) for c in ("blue", "red")]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    assert np.asarray(D.read_image(buf.getvalue()))[0, 0, 2] > 200


def test_decompression_bomb_refused_before_decoding():
    # A tiny PNG whose header claims 30000 x 30000 pixels.
    bomb = _png(Image.new("1", (30000, 30000)))
    assert len(bomb) < 200_000
    with pytest.raises(InvalidInputError, match="limit is"):
        D.read_image(bomb, "bomb.png", max_pixels=40_000_000)


def test_one_pixel_image_refused():
    with pytest.raises(InvalidInputError, match="1x1"):
        D.read_image(_png(Image.new("RGB", (1, 1))), "dot.png")


def test_truncated_and_garbage_images():
    jpeg = _png(Image.new("RGB", (64, 64), "green"), "JPEG")
    with pytest.raises(InvalidInputError, match="truncated or corrupt"):
        D.read_image(jpeg[: len(jpeg) // 2], "half.jpg")
    with pytest.raises(InvalidInputError, match="not an image"):
        D.read_image(b"this is text, not pixels", "fake.png")
