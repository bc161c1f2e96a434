"""A corpus of hostile and malformed inputs, generated in code (nothing is downloaded).

Each entry has a file name (whose extension may lie), its bytes, and the kinds of upload it
pretends to be: ``table``, ``text``, ``image``, ``archive``, ``dicom``, ``nifti``. Pages and CLI
commands that accept a kind are fed every entry of that kind.
"""

from __future__ import annotations

import gzip
import io
import stat
import struct
import zipfile
from dataclasses import dataclass

import numpy as np
import pandas as pd
from PIL import Image


@dataclass(frozen=True)
class HostileFile:
    name: str
    data: bytes
    kinds: tuple[str, ...]
    what: str

    @property
    def mime(self) -> str:
        return "application/octet-stream"


def _png(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _zip(entries: dict[str, bytes], *, symlink: str | None = None, compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, blob in entries.items():
            zf.writestr(name, blob)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "../../../../etc/passwd")
    return buf.getvalue()


def _xlsx_multi_sheet_merged() -> bytes:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "Summary"
    ws["A1"] = "Quarterly report"
    ws.merge_cells("A1:D1")
    ws.append(["id", "amount", "note"])
    ws.append([1, 10.5, '=HYPERLINK("http://evil.invalid","click")'])
    ws2 = wb.create_sheet("Data")
    ws2.append(["a", "b"])
    ws2.append([1, 2])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _parquet_odd_types() -> bytes:
    frame = pd.DataFrame(
        {
            "when": pd.to_datetime(["2024-01-01", None, "2025-06-30"]),
            "delta": pd.to_timedelta([1, 2, 3], unit="D"),
            "blob": [b"\x00\x01", b"", None],
            "nested": [[1, 2], [], None],
            "cat": pd.Categorical(["a", "b", "a"]),
            "big": [2**62, -(2**62), 0],
        }
    )
    buf = io.BytesIO()
    frame.to_parquet(buf)
    return buf.getvalue()


def _dicom_without_pixels() -> bytes:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("x.dcm", {}, file_meta=meta, preamble=b"\x00" * 128)
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "PHI-123456"
    ds.Modality = "CT"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _nifti(data: np.ndarray) -> bytes:
    import nibabel as nib

    img = nib.Nifti1Image(data, affine=np.eye(4))
    return gzip.compress(img.to_bytes())


def _bmp_header_only(width: int, height: int) -> bytes:
    header = b"BM" + struct.pack("<IHHI", 54 + width * height * 3, 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, width * height * 3, 2835, 2835, 0, 0)
    return header + info + b"\x00" * 64


def build_corpus() -> list[HostileFile]:
    """At least 50 hostile inputs across every kind of upload."""
    xss = "<script>alert('x')</script><img src=x onerror=alert(1)>"
    jpeg = _png(Image.new("RGB", (64, 64), "green"), "JPEG")
    png = _png(Image.new("RGB", (64, 64), "blue"))
    files = [
        # --- tables and text
        HostileFile("empty.csv", b"", ("table", "text"), "empty file"),
        HostileFile("whitespace.csv", b"  \n \n\t\n", ("table", "text"), "only whitespace"),
        HostileFile("header_only.csv", b"a,b,c\n", ("table",), "header without rows"),
        HostileFile("ragged.csv", b"a,b,c\n1,2\n3,4,5,6,7\n8\n", ("table",), "ragged rows"),
        HostileFile("unclosed_quote.csv", b'a,b\n"1,2\n3,4\n', ("table",), "unclosed quote"),
        HostileFile("semicolon.csv", b"text;label\nnice;1\nbad;0\n", ("table",), "semicolon delimiter"),
        HostileFile("pipes.csv", b"text|label\nnice|1\nbad|0\n", ("table",), "pipe delimiter"),
        HostileFile(
            "utf16.csv", "text,label\nsch\u00f6n,1\nmies,0\n".encode("utf-16"), ("table", "text"), "UTF-16"
        ),
        HostileFile(
            "latin1.csv",
            "text,label\ncaf\u00e9 cr\u00e8me,1\n".encode("latin-1"),
            ("table", "text"),
            "Latin-1",
        ),
        HostileFile("bom.csv", "\ufefftext,label\nok,1\n".encode(), ("table", "text"), "UTF-8 BOM"),
        HostileFile("binary.csv", bytes(range(256)) * 64, ("table", "text"), "binary garbage named .csv"),
        HostileFile("nul_bytes.csv", b"a,b\n1,\x00\x00\n", ("table", "text"), "NUL bytes"),
        HostileFile("dup_columns.csv", b"a,a,b\n1,2,3\n", ("table",), "duplicated column names"),
        HostileFile("no_header_name.csv", b",b\n1,2\n", ("table",), "a column without a name"),
        HostileFile(
            "formulas.csv",
            b'text,label,amount\n"=HYPERLINK(""http://evil.invalid"",""x"")",1,=1+1\n@SUM(A1),0,+5\n',
            ("table", "text"),
            "formula cells",
        ),
        HostileFile(
            "xss.csv",
            f'text,label\n"{xss}",1\n"<b>bold</b> &amp;",0\n'.encode(),
            ("table", "text"),
            "HTML/script text",
        ),
        HostileFile(
            "long_line.csv", b"text,label\n" + b"x" * 2_000_000 + b",1\n", ("table", "text"), "2 MB line"
        ),
        HostileFile(
            "many_columns.csv",
            (",".join(f"c{i}" for i in range(5000)) + "\n" + ",".join(["1"] * 5000)).encode(),
            ("table",),
            "5,000 columns",
        ),
        HostileFile(
            "numbers_as_text.csv",
            b"age,income\nthirty,lots\nforty,none\n",
            ("table",),
            "text in numeric columns",
        ),
        HostileFile("all_missing.csv", b"a,b\n,\n,\n,\n", ("table",), "every value missing"),
        HostileFile(
            "emoji.txt",
            "Love it \U0001f60d\n\u5f88\u597d\n\u0645\u0645\u062a\u0627\u0632\n".encode(),
            ("text", "table"),
            "emoji and non-Latin scripts",
        ),
        HostileFile(
            "xlsx_multi.xlsx",
            _xlsx_multi_sheet_merged(),
            ("table",),
            "Excel: several sheets, merged cells, formula",
        ),
        HostileFile("fake.xlsx", b"id,amount\n1,2\n", ("table",), "CSV named .xlsx"),
        HostileFile(
            "legacy.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512, ("table",), "legacy .xls"
        ),
        HostileFile("odd.parquet", _parquet_odd_types(), ("table",), "Parquet with odd types"),
        HostileFile("truncated.parquet", _parquet_odd_types()[:200], ("table",), "truncated Parquet"),
        HostileFile("image_as.csv", png, ("table", "text"), "PNG named .csv"),
        HostileFile("zip_as.csv", _zip({"a.csv": b"a\n1\n"}), ("table",), "zip named .csv"),
        # --- images
        HostileFile("not_image.png", b"this is not an image at all", ("image",), "text named .png"),
        HostileFile("empty.png", b"", ("image",), "empty image"),
        HostileFile("truncated.jpg", jpeg[: len(jpeg) // 2], ("image",), "truncated JPEG"),
        HostileFile("bomb.png", _png(Image.new("1", (30000, 30000))), ("image",), "decompression bomb"),
        HostileFile("tiny.png", _png(Image.new("RGB", (1, 1))), ("image",), "1x1 image"),
        HostileFile("bmp_header_only.bmp", _bmp_header_only(4000, 4000), ("image",), "BMP header, no pixels"),
        HostileFile(
            "sixteen_bit.png",
            _png(Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16))),
            ("image",),
            "16-bit grey",
        ),
        HostileFile(
            "cmyk.jpg", _png(Image.new("CMYK", (64, 64), (0, 255, 255, 0)), "JPEG"), ("image",), "CMYK JPEG"
        ),
        HostileFile(
            "alpha.png", _png(Image.new("RGBA", (64, 64), (255, 0, 0, 0))), ("image",), "transparent PNG"
        ),
        HostileFile("csv_as.jpg", b"a,b\n1,2\n", ("image",), "CSV named .jpg"),
        # --- archives
        HostileFile(
            "traversal.zip", _zip({"cat/ok.png": png, "../../evil.png": png}), ("archive",), "../ paths"
        ),
        HostileFile(
            "absolute.zip", _zip({"/etc/cron.d/evil": b"x", "cat/ok.png": png}), ("archive",), "absolute path"
        ),
        HostileFile(
            "symlink.zip",
            _zip({"cat/a.png": png, "dog/b.png": png}, symlink="cat/link.png"),
            ("archive",),
            "symlink member",
        ),
        HostileFile("bomb.zip", _zip({"zeros.png": b"\x00" * (80 * 2**20)}), ("archive",), "zip bomb"),
        HostileFile(
            "many_tiny.zip",
            _zip({f"c{i % 2}/f{i}.png": b"x" for i in range(6000)}),
            ("archive",),
            "6,000 tiny files",
        ),
        HostileFile(
            "hidden_only.zip",
            _zip({".DS_Store": b"x", "__MACOSX/._a.png": b"y"}),
            ("archive",),
            "only hidden files",
        ),
        HostileFile(
            "nested.zip", _zip({"inner.zip": _zip({"a/b.png": png})}), ("archive",), "zip inside zip"
        ),
        HostileFile("not_zip.zip", b"PK\x03\x04 this is not really a zip", ("archive",), "corrupt zip"),
        HostileFile(
            "one_class.zip", _zip({f"only/{i}.png": png for i in range(6)}), ("archive",), "one class only"
        ),
        HostileFile(
            "single_image_class.zip",
            _zip({**{f"a/{i}.png": png for i in range(6)}, "b/0.png": png}),
            ("archive",),
            "class with one image",
        ),
        HostileFile(
            "corrupt_members.zip",
            _zip({"a/1.png": b"junk", "b/2.png": b"junk"}),
            ("archive",),
            "corrupt images inside",
        ),
        # --- medical
        HostileFile("not_dicom.dcm", b"just some text in a .dcm file", ("dicom",), "non-DICOM .dcm"),
        HostileFile("no_pixels.dcm", _dicom_without_pixels(), ("dicom",), "DICOM without pixel data"),
        HostileFile("empty.dcm", b"", ("dicom",), "empty .dcm"),
        HostileFile(
            "nan.nii.gz", _nifti(np.full((16, 16, 4), np.nan, dtype=np.float32)), ("nifti",), "NIfTI of NaNs"
        ),
        HostileFile(
            "partly_nan.nii.gz",
            _nifti(
                np.where(np.arange(16 * 16 * 4).reshape(16, 16, 4) % 3 == 0, np.nan, 1.0).astype(np.float32)
            ),
            ("nifti",),
            "NIfTI with some NaNs",
        ),
        HostileFile(
            "truncated.nii.gz",
            _nifti(np.ones((16, 16, 4), dtype=np.float32))[:100],
            ("nifti",),
            "truncated NIfTI",
        ),
        HostileFile("text.nii", b"not a nifti volume", ("nifti",), "text named .nii"),
    ]
    return files


def by_kind(kind: str) -> list[HostileFile]:
    return [f for f in build_corpus() if kind in f.kinds]
