"""Reading archives and paths safely: zip files into memory (never extracted to paths taken from the
archive), and the files of a CLI path (a file, a folder or a zip) held to the same limits.

Example:
    >>> contents = read_zip(zip_bytes)
    >>> [m.path for m in contents.members], contents.skipped
"""

from __future__ import annotations

import io
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from lucid.core.data import MAX_ARCHIVE_BYTES, MAX_ARCHIVE_FILES, MAX_COMPRESSION_RATIO, _check_size
from lucid.core.errors import InvalidInputError

_MAGIC_ZIP = b"PK\x03\x04"


@dataclass(frozen=True)
class ArchiveMember:
    """One regular file read from an archive: its normalised relative path and its bytes."""

    path: str
    data: bytes

    @property
    def parts(self) -> tuple[str, ...]:
        return PurePosixPath(self.path).parts

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name


@dataclass
class ArchiveContents:
    """The files read from an archive and what was skipped (hidden files, folders, links)."""

    members: list[ArchiveMember] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _is_hidden(parts: tuple[str, ...]) -> bool:
    return any(p.startswith(".") or p == "__MACOSX" or p == "Thumbs.db" for p in parts)


def read_zip(
    data: bytes,
    *,
    max_files: int | None = None,
    max_total_bytes: int | None = None,
    max_ratio: int = MAX_COMPRESSION_RATIO,
) -> ArchiveContents:
    """Read a zip archive safely into memory.

    Refused whole, with a message: entries with absolute or ``..`` paths (path traversal), more
    than ``max_files`` files, a declared total above ``max_total_bytes`` or a compression ratio above
    ``max_ratio`` (zip bombs), and members that inflate past their declared size. Skipped and
    listed: directories, hidden files (``.x``, ``__MACOSX``), symbolic links. Nested archives are
    returned as bytes, never opened.

    Raises:
        InvalidInputError: the bytes are not a zip, or the archive is unsafe or too large.
    """
    _check_size(data, "archive")
    max_files = MAX_ARCHIVE_FILES if max_files is None else max_files
    max_total_bytes = MAX_ARCHIVE_BYTES if max_total_bytes is None else max_total_bytes
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise InvalidInputError("The file is not a valid zip archive.") from exc
    contents = ArchiveContents()
    with zf:
        infos = zf.infolist()
        for info in infos:
            raw = info.filename.replace("\\", "/")
            path = PurePosixPath(raw)
            if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":") or ".." in path.parts:
                raise InvalidInputError(
                    f"The archive contains an unsafe path ('{raw[:80]}'); it was not opened."
                )
        files = [i for i in infos if not i.is_dir()]
        if len(files) > max_files:
            raise InvalidInputError(f"The archive holds {len(files):,} files; the limit is {max_files:,}.")
        declared = sum(i.file_size for i in files)
        if declared > max_total_bytes:
            raise InvalidInputError(
                f"The archive would expand to {declared / 2**20:.0f} MB; "
                f"the limit is {max_total_bytes / 2**20:.0f} MB."
            )
        if declared > max_ratio * max(len(data), 1) and declared > 10 * 2**20:
            raise InvalidInputError(
                "The archive's compression ratio is implausibly high; it was refused as a zip bomb."
            )
        total = 0
        for info in files:
            parts = PurePosixPath(info.filename.replace("\\", "/")).parts
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                contents.skipped.append(f"{info.filename} (symbolic link)")
                continue
            if _is_hidden(parts):
                contents.skipped.append(f"{info.filename} (hidden)")
                continue
            try:
                with zf.open(info) as fh:
                    blob = fh.read(info.file_size + 1)
            except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as exc:
                raise InvalidInputError(
                    f"The archive member '{info.filename}' is corrupt or encrypted."
                ) from exc
            if len(blob) > info.file_size:
                raise InvalidInputError(
                    "An archive member is larger than its header says; the archive was refused."
                )
            total += len(blob)
            if total > max_total_bytes:
                raise InvalidInputError(
                    f"The archive expands past {max_total_bytes / 2**20:.0f} MB; it was refused."
                )
            contents.members.append(ArchiveMember("/".join(parts), blob))
    if not contents.members:
        raise InvalidInputError("The archive holds no usable files.")
    return contents


def is_zip(data: bytes) -> bool:
    """True when the bytes start like a zip archive."""
    return data[:4] == _MAGIC_ZIP


def read_path(path: str | Path) -> tuple[bytes, str]:
    """Bytes and file name of one input file of the command line.

    Raises:
        InvalidInputError: no such file.
    """
    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"No such file: {path}")
    return p.read_bytes(), p.name


def files_from_path(path: str | Path) -> list[tuple[str, bytes]]:
    """(name, bytes) of a file, or of every file of a folder (hidden ones left out), sorted by path.

    How every image domain reads its CLI input: a file (an image, a scan or a zip, opened later by
    :func:`read_zip`) or a folder. A folder is held to the limits of a zip archive (files and total
    size), since it is read into memory.

    Raises:
        InvalidInputError: no such file or folder, or a folder over the limits.
    """
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and not _is_hidden(f.relative_to(p).parts))
        if len(files) > MAX_ARCHIVE_FILES:
            raise InvalidInputError(
                f"The folder holds {len(files):,} files; the limit is {MAX_ARCHIVE_FILES:,}."
            )
        total = sum(f.stat().st_size for f in files)
        if total > MAX_ARCHIVE_BYTES:
            raise InvalidInputError(
                f"The folder holds {total / 2**20:.0f} MB; the limit is {MAX_ARCHIVE_BYTES / 2**20:.0f} MB."
            )
        return [(f.relative_to(p).as_posix(), f.read_bytes()) for f in files]
    if p.is_file():
        return [(p.name, p.read_bytes())]
    raise InvalidInputError(f"No such file or folder: {path}")
