"""Parsing and validating uploads, shared by every domain.

Everything here takes bytes (what a browser upload or a file on disk gives) and returns plain
pandas / PIL objects, or raises :class:`InvalidInputError` with a message a user can act on.
Nothing uploaded is ever executed or unpickled: tables are parsed by pandas' CSV, Excel (openpyxl)
and Parquet (pyarrow) readers; archives are read into memory, never extracted to disk paths taken
from the archive.

Example:
    >>> from lucid.core.data import read_table
    >>> df = read_table(b"a;b\\n1;2\\n", "applicants.csv")
    >>> list(df.columns)
    ['a', 'b']
"""

from __future__ import annotations

import csv
import io
import os
import warnings
import zipfile
from collections import Counter
from pathlib import PurePosixPath

import numpy as np
import pandas as pd
from PIL import Image, ImageOps, ImageSequence

from lucid.core.errors import InvalidInputError


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


MAX_UPLOAD_BYTES = _env_int("LUCID_MAX_UPLOAD_MB", 200) * 1024 * 1024
MAX_TABLE_ROWS = _env_int("LUCID_MAX_ROWS", 1_000_000)
MAX_IMAGE_PIXELS = _env_int("LUCID_MAX_IMAGE_PIXELS", 40_000_000)
MIN_IMAGE_SIDE = 16
MAX_ARCHIVE_FILES = _env_int("LUCID_MAX_ARCHIVE_FILES", 5_000)
MAX_ARCHIVE_BYTES = _env_int("LUCID_MAX_ARCHIVE_MB", 1024) * 1024 * 1024
MAX_COMPRESSION_RATIO = 200

TABLE_EXTENSIONS = (".csv", ".tsv", ".txt", ".xlsx", ".xlsm", ".parquet")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

_WESTERN = ("cp1252", "latin_1", "iso8859_15")
_MAGIC_ZIP = b"PK\x03\x04"
_MAGIC_PARQUET = b"PAR1"
_MAGIC_OLE = b"\xd0\xcf\x11\xe0"  # legacy .xls


def _check_size(data: bytes, what: str = "file") -> None:
    if not data:
        raise InvalidInputError(f"The {what} is empty.")
    if len(data) > MAX_UPLOAD_BYTES:
        raise InvalidInputError(
            f"The {what} is {len(data) / 2**20:.0f} MB; the limit is {MAX_UPLOAD_BYTES / 2**20:.0f} MB."
        )


def _extension(filename: str | None) -> str:
    return PurePosixPath((filename or "").replace("\\", "/")).suffix.lower()


# ----------------------------------------------------------------------------------------------
# Text decoding
# ----------------------------------------------------------------------------------------------


def decode_text(data: bytes) -> tuple[str, str]:
    """Decode uploaded text, detecting the encoding.

    BOMs (UTF-8, UTF-16, UTF-32) are honoured, then strict UTF-8 is tried, then a statistical guess.

    Returns:
        The text and the name of the encoding used.

    Raises:
        InvalidInputError: the bytes are empty, binary, or in no encoding that can be detected.
    """
    _check_size(data)
    boms = [
        (b"\xef\xbb\xbf", "utf-8-sig"),
        (b"\xff\xfe\x00\x00", "utf-32"),
        (b"\x00\x00\xfe\xff", "utf-32"),
        (b"\xff\xfe", "utf-16"),
        (b"\xfe\xff", "utf-16"),
    ]
    encoding = next((enc for bom, enc in boms if data.startswith(bom)), None)
    if encoding is None and b"\x00" in data[:100_000]:
        raise InvalidInputError("The file looks binary, not like text. Upload a CSV, Excel or Parquet file.")
    if encoding is None:
        try:
            text = data.decode("utf-8")
            encoding = "utf-8"
        except UnicodeDecodeError:
            text = None
        if text is None:
            from charset_normalizer import from_bytes

            matches = list(from_bytes(data[:2_000_000]))
            best = matches[0] if matches else None
            # Short samples leave several single-byte code pages equally plausible; prefer
            # Windows-1252 / Latin-1, by far the most common for spreadsheets exported in the West.
            for match in matches:
                if (
                    match.encoding in _WESTERN
                    and best is not None
                    and match.percent_chaos <= best.percent_chaos
                ):
                    best = match
                    break
            if best is None or best.encoding is None:
                raise InvalidInputError(
                    "The file looks binary or uses an unknown text encoding; save it as UTF-8 text."
                )
            encoding = best.encoding
    else:
        text = None
    if text is None:
        if encoding is None:  # every branch above names an encoding or raises
            raise InvalidInputError("The file uses an unknown text encoding; save it as UTF-8 text.")
        try:
            text = data.decode(encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            raise InvalidInputError(f"The file could not be decoded as {encoding}.") from exc
    sample = text[:100_000]
    control = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\r\n\t")
    if "\x00" in sample or (sample and control / len(sample) > 0.05):
        raise InvalidInputError("The file looks binary, not like text. Upload a CSV, Excel or Parquet file.")
    return text.lstrip("\ufeff"), encoding or "utf-8"  # set on every path that decoded the text


# ----------------------------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------------------------


def _sniff_delimiter(text: str) -> str:
    sample = "\n".join(text[:65_536].splitlines()[:50])
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        first = sample.splitlines()[0] if sample else ""
        counts = {d: first.count(d) for d in ",;\t|"}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] > 0 else ","


def _check_columns(columns: list) -> None:
    names = [str(c).strip() for c in columns]
    duplicated = sorted({n for n, k in Counter(names).items() if k > 1})
    if duplicated:
        raise InvalidInputError(f"Column names appear more than once: {', '.join(duplicated)}. Rename them.")
    if any(n == "" for n in names):
        raise InvalidInputError("A column has no name in the header row.")


def _read_csv_text(text: str, max_rows: int) -> pd.DataFrame:
    delimiter = _sniff_delimiter(text)
    buffer = io.StringIO(text)
    header = next(csv.reader(io.StringIO(text.split("\n", 1)[0]), delimiter=delimiter), [])
    _check_columns(header)
    try:
        df = pd.read_csv(buffer, sep=delimiter, nrows=max_rows + 1, skipinitialspace=False, low_memory=False)
    except pd.errors.EmptyDataError as exc:
        raise InvalidInputError("The file has no columns.") from exc
    except pd.errors.ParserError as exc:
        detail = str(exc).split("\n")[0]
        raise InvalidInputError(f"The file is not a well-formed table: {detail}") from exc
    df.columns = [str(c).strip() for c in df.columns]
    return df


def _check_zip_container(data: bytes, what: str) -> None:
    """Refuse zip-based documents (xlsx) whose members would inflate beyond the limits."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
    except zipfile.BadZipFile as exc:
        raise InvalidInputError(f"The {what} is corrupt (not a valid zip container).") from exc
    total = sum(i.file_size for i in infos)
    if (
        len(infos) > MAX_ARCHIVE_FILES
        or total > MAX_ARCHIVE_BYTES
        or total > MAX_COMPRESSION_RATIO * len(data)
    ):
        raise InvalidInputError(
            f"The {what} would expand to {total / 2**20:.0f} MB; it was refused as unsafe."
        )


def list_sheets(data: bytes) -> list[str]:
    """Sheet names of an Excel workbook, in order."""
    _check_zip_container(data, "workbook")
    try:
        with pd.ExcelFile(io.BytesIO(data), engine="openpyxl") as book:
            return [str(s) for s in book.sheet_names]
    except Exception as exc:  # openpyxl raises many types for broken files
        raise InvalidInputError("The Excel file could not be read (it may be corrupt).") from exc


def read_table(
    data: bytes, filename: str | None = None, *, sheet: str | int = 0, max_rows: int | None = None
) -> pd.DataFrame:
    """Parse an uploaded table (CSV/TSV/TXT with sniffed delimiter and encoding, Excel, Parquet).

    The format is taken from the content's magic bytes first, so a file whose extension lies is
    still read correctly (or refused clearly).

    Args:
        data: The file's bytes.
        filename: Its name, used for the error messages and when the content is ambiguous.
        sheet: For Excel, the sheet name or index.
        max_rows: Refuse tables with more data rows than this (default ``LUCID_MAX_ROWS``).

    Raises:
        InvalidInputError: empty, binary, malformed, too large, duplicated or missing column names.
    """
    _check_size(data)
    max_rows = MAX_TABLE_ROWS if max_rows is None else max_rows
    ext = _extension(filename)
    if data.startswith(_MAGIC_PARQUET):
        try:
            df = pd.read_parquet(io.BytesIO(data))
        except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...
            raise InvalidInputError(
                "The Parquet file could not be read (it may be corrupt or truncated)."
            ) from exc
        _check_columns(list(df.columns))
        df.columns = [str(c) for c in df.columns]
    elif data.startswith(_MAGIC_ZIP):
        _check_zip_container(data, "workbook")
        try:
            df = pd.read_excel(io.BytesIO(data), sheet_name=sheet, engine="openpyxl", nrows=max_rows + 1)
        except ValueError as exc:
            raise InvalidInputError(f"The workbook has no sheet {sheet!r}.") from exc
        except Exception as exc:
            raise InvalidInputError("The file is a zip archive, not an Excel workbook or a table.") from exc
        _check_columns([c for c in df.columns])
        df.columns = [str(c).strip() for c in df.columns]
    elif data.startswith(_MAGIC_OLE):
        raise InvalidInputError("Legacy .xls workbooks are not supported; save the file as .xlsx or CSV.")
    else:
        if ext in (".xlsx", ".xlsm", ".parquet"):
            raise InvalidInputError(f"The file is named {ext} but its content is not a valid {ext[1:]} file.")
        text, _ = decode_text(data)
        if not text.strip():
            raise InvalidInputError("The file is empty.")
        df = _read_csv_text(text, max_rows)
    if len(df) > max_rows:
        raise InvalidInputError(f"The table has more than {max_rows:,} rows; the limit is {max_rows:,}.")
    if df.shape[1] == 0:
        raise InvalidInputError("The table has no columns.")
    if len(df) == 0:
        raise InvalidInputError("The table has a header but no data rows.")
    df = df.dropna(how="all").reset_index(drop=True)
    if len(df) == 0:
        raise InvalidInputError("Every row of the table is empty.")
    return df


def neutralise_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """Return a copy safe to open in a spreadsheet: text cells starting with = + - @ get a leading '.

    Numbers are left as numbers (a negative number is not a formula).
    """
    out = df.copy()
    out.columns = [_neutralise_cell(str(c)) for c in out.columns]
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(_neutralise_cell)
    return out


def _neutralise_cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def to_safe_csv(df: pd.DataFrame) -> bytes:
    """CSV bytes (UTF-8 with BOM so Excel detects it) with formula injection neutralised."""
    return neutralise_formulas(df).to_csv(index=False).encode("utf-8-sig")


# ----------------------------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------------------------


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB correctly (16-bit scaled, alpha over white, CMYK, palette)."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        finite = arr[np.isfinite(arr)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        scaled = np.zeros_like(arr) if hi <= lo else (np.nan_to_num(arr, nan=lo) - lo) / (hi - lo) * 255.0
        return Image.fromarray(np.clip(scaled, 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "CMYK":
        return img.convert("RGB")
    return img.convert("RGB")


def read_image(
    data: bytes,
    filename: str | None = None,
    *,
    max_pixels: int | None = None,
    min_side: int = MIN_IMAGE_SIDE,
) -> Image.Image:
    """Decode an uploaded image into an 8-bit RGB PIL image, upright per its EXIF orientation.

    Multi-frame files (GIF, TIFF) give their first frame.

    Raises:
        InvalidInputError: not an image, truncated or corrupt, too many pixels (decompression
            bombs are refused from the header, before any pixel is decoded), or too small.
    """
    label = f"'{filename}'" if filename else "The file"
    _check_size(data, "image")
    max_pixels = MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if width * height > max_pixels:
                raise InvalidInputError(
                    f"{label} is {width}x{height} pixels; the limit is {max_pixels / 1e6:.0f} megapixels."
                )
            if min(width, height) < min_side:
                raise InvalidInputError(
                    f"{label} is only {width}x{height} pixels; at least {min_side}x{min_side} is needed."
                )
            frame = next(ImageSequence.Iterator(img))
            frame.load()
            frame = ImageOps.exif_transpose(frame) or frame
            return _to_rgb(frame)
    except InvalidInputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidInputError(
            f"{label} declares more pixels than allowed (the limit is {max_pixels / 1e6:.0f} megapixels); "
            "it was refused as a decompression bomb."
        ) from exc
    except Image.UnidentifiedImageError as exc:
        raise InvalidInputError(
            f"{label} is not an image in a supported format (JPEG, PNG, WebP, BMP, TIFF, GIF)."
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidInputError(f"{label} is truncated or corrupt and could not be decoded.") from exc
