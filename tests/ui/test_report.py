"""The HTML report's image gallery: small embedded JPEG thumbnails, escaped captions, a cap."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from PIL import Image

from lucid.ui.report import Report, thumbnail_data_uri

DATA_URI = re.compile(r"<img src='data:image/jpeg;base64,([A-Za-z0-9+/=]+)'")


def _decode(uri_or_b64: str) -> Image.Image:
    payload = uri_or_b64.split(",", 1)[-1]
    return Image.open(io.BytesIO(base64.b64decode(payload)))


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [((600, 300, 3), np.uint8), ((40, 50), np.uint8), ((90, 70, 4), np.uint8), ((64, 64), np.uint16)],
)
def test_thumbnail_is_a_small_jpeg(shape, dtype):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, np.iinfo(dtype).max, shape).astype(dtype)
    uri = thumbnail_data_uri(arr)
    assert uri.startswith("data:image/jpeg;base64,")
    thumb = _decode(uri)
    assert thumb.format == "JPEG" and thumb.mode == "RGB"
    assert max(thumb.size) <= 160
    if max(shape[:2]) <= 160:  # never enlarged
        assert thumb.size == (shape[1], shape[0])
    else:
        assert thumb.size == (80, 160)  # aspect ratio kept


def test_thumbnail_of_palette_and_cmyk_images_keeps_their_colours():
    red = Image.new("RGB", (40, 30), (220, 20, 20))
    for image in (red.convert("P"), red.convert("CMYK")):
        thumb = _decode(thumbnail_data_uri(image)).convert("RGB")
        r, g, b = thumb.getpixel((20, 15))
        assert r > 180 and g < 60 and b < 60, image.mode


def test_thumbnail_carries_no_metadata_of_the_source():
    source = Image.fromarray(np.full((200, 200, 3), 120, np.uint8))
    exif = Image.Exif()
    exif[0x010E] = "Patient: Jane Doe"  # ImageDescription
    buffer = io.BytesIO()
    source.save(buffer, format="JPEG", exif=exif, comment=b"secret comment")
    with_meta = Image.open(io.BytesIO(buffer.getvalue()))
    assert with_meta.info.get("exif")
    thumb_bytes = base64.b64decode(thumbnail_data_uri(with_meta).split(",", 1)[1])
    assert b"Jane Doe" not in thumb_bytes and b"secret comment" not in thumb_bytes
    assert not Image.open(io.BytesIO(thumb_bytes)).info.get("exif")


def test_gallery_escapes_names_and_captions_and_keeps_the_report_self_contained():
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 255, (32, 48, 3)).astype(np.uint8) for _ in range(3)]
    names = ["<script>alert(1)</script>.png", "a&b.jpg", 'it\'s "quoted".png']
    report = Report("Batch")
    report.add_gallery(
        "Gallery",
        [(im, n, f"class <{i}> (90.0%)") for i, (im, n) in enumerate(zip(images, names, strict=True))],
    )
    page = report.to_html()
    assert len(DATA_URI.findall(page)) == 3
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;.png" in page
    assert "a&amp;b.jpg" in page and "it&#x27;s &quot;quoted&quot;.png" in page
    assert "class &lt;0&gt; (90.0%)" in page and "<0>" not in page
    assert "http://" not in page and "https://" not in page
    assert "Showing the first" not in page


def test_gallery_is_capped_and_says_so():
    tiny = np.zeros((20, 20, 3), np.uint8)
    report = Report("Batch")
    report.add_gallery("Gallery", [(tiny, f"{i}.png", "x") for i in range(12)], limit=5)
    page = report.to_html()
    assert len(DATA_URI.findall(page)) == 5
    assert "Showing the first 5 of 12 images." in page
    assert "4.png" in page and "5.png" not in page


def test_thumbnail_refuses_what_is_not_an_image():
    with pytest.raises(ValueError, match="grey, RGB or RGBA"):
        thumbnail_data_uri(np.zeros((4, 4, 5), np.uint8))
