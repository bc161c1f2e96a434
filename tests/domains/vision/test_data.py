"""Vision inputs: uploads in every image mode, bad files listed (never fatal), the sample photos."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from lucid.core.errors import InvalidInputError, ModelNotFoundError
from lucid.domains.vision.data import images_digest, read_uploaded_images, sample_images


def _encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def test_uploads_in_every_mode_are_converted_to_rgb():
    red = (200, 30, 40)
    rgb = Image.new("RGB", (40, 30), red)
    sixteen = Image.fromarray(np.tile(np.arange(40, dtype=np.uint16) * 1000, (30, 1)))
    alpha = Image.new("RGBA", (40, 30), (0, 0, 255, 0))  # fully transparent blue -> white
    palette = rgb.convert("P", palette=Image.ADAPTIVE)
    cmyk = rgb.convert("CMYK")
    gif = [Image.new("P", (40, 30), 1), Image.new("P", (40, 30), 2)]
    gif_bytes = io.BytesIO()
    gif[0].save(gif_bytes, format="GIF", save_all=True, append_images=gif[1:])
    files = [
        ("a.png", _encode(rgb, "PNG")),
        ("b.tiff", _encode(sixteen, "TIFF")),
        ("c.png", _encode(alpha, "PNG")),
        ("d.bmp", _encode(palette, "BMP")),
        ("e.jpg", _encode(cmyk, "JPEG", quality=95)),
        ("f.webp", _encode(rgb, "WEBP", lossless=True)),
        ("g.gif", gif_bytes.getvalue()),
    ]
    out = read_uploaded_images(files)
    assert out.names == [n for n, _ in files] and out.problems == []
    arrays = {n: np.asarray(im) for n, im in zip(out.names, out.images, strict=True)}
    assert all(a.dtype == np.uint8 and a.shape == (30, 40, 3) for a in arrays.values())
    assert tuple(arrays["a.png"][0, 0]) == red and tuple(arrays["f.webp"][0, 0]) == red
    assert arrays["b.tiff"][0, 0, 0] == 0 and arrays["b.tiff"][0, -1, 0] == 255  # 16-bit scaled to 8
    assert tuple(arrays["c.png"][0, 0]) == (255, 255, 255)
    assert np.abs(arrays["e.jpg"][0, 0].astype(int) - red).max() < 12
    assert np.abs(arrays["d.bmp"][0, 0].astype(int) - red).max() < 12


def test_bad_uploads_are_listed_not_fatal():
    good = _encode(Image.new("RGB", (64, 64), (10, 200, 10)), "JPEG")
    bomb = io.BytesIO()
    Image.new("1", (12000, 12000)).save(bomb, format="PNG")  # 144 MP declared, tiny file
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("deep/er/folder/ok.jpg", good)
        zf.writestr(".hidden/secret.jpg", good)
        zf.writestr("deep/readme.txt", b"hello")
    out = read_uploaded_images(
        [
            ("ok.jpg", good),
            ("text.jpg", b"definitely not an image" * 5),
            ("cut.jpg", good[: len(good) // 2]),
            ("bomb.png", bomb.getvalue()),
            ("dot.png", _encode(Image.new("RGB", (1, 1)), "PNG")),
            ("set.zip", zipped.getvalue()),
        ]
    )
    assert out.names == ["ok.jpg", "set.zip/deep/er/folder/ok.jpg"]
    problems = " | ".join(out.problems)
    assert "'text.jpg' is not an image" in problems
    assert "'cut.jpg' is truncated or corrupt" in problems
    assert "bomb.png" in problems and "megapixels" in problems
    assert "'dot.png' is only 1x1 pixels" in problems
    assert "readme.txt: not an image file" in problems and "secret.jpg (hidden)" in problems
    with pytest.raises(InvalidInputError, match="No usable image"):
        read_uploaded_images([("x.png", b"\x89PNG\r\n\x1a\n broken")])
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../etc/a.jpg", good)
    with pytest.raises(InvalidInputError, match="unsafe path"):
        read_uploaded_images([("evil.zip", evil.getvalue())])


def test_unknown_sample_photo_lists_the_valid_ones():
    with pytest.raises(ModelNotFoundError, match="chelsea"):
        sample_images(["moon"])
    assert list(sample_images(["coffee"])) == ["coffee"]


def test_images_digest_changes_with_names_and_pixels():
    pixels = np.zeros((4, 4, 3), dtype=np.uint8)
    base = images_digest([("a.png", pixels)])
    assert base == images_digest([("a.png", pixels.copy())])
    assert base != images_digest([("b.png", pixels)])
    assert base != images_digest([("a.png", pixels + 1)])
