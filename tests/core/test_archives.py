"""lucid.core.archives: zip archives read safely into memory, and the files of a CLI path."""

import io
import stat
import zipfile

import pytest

from lucid.core import archives as A
from lucid.core.errors import InvalidInputError


def _zip(entries: dict[str, bytes], symlink: str | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, blob in entries.items():
            zf.writestr(name, blob)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return buf.getvalue()


def test_zip_reads_nested_folders_and_skips_hidden_and_links():
    raw = _zip(
        {"cats/a/1.png": b"1", "dogs/2.png": b"2", ".DS_Store": b"x", "__MACOSX/cats/._1.png": b"y"},
        symlink="cats/link.png",
    )
    out = A.read_zip(raw)
    assert sorted(m.path for m in out.members) == ["cats/a/1.png", "dogs/2.png"]
    assert any("symbolic link" in s for s in out.skipped)
    assert sum("hidden" in s for s in out.skipped) == 2


@pytest.mark.parametrize("name", ["../evil.txt", "a/../../evil.txt", "/etc/passwd", "C:/x.txt"])
def test_zip_path_traversal_refused(name):
    with pytest.raises(InvalidInputError, match="unsafe path"):
        A.read_zip(_zip({"ok.txt": b"1", name: b"2"}))


def test_zip_bomb_refused():
    raw = _zip({"zeros.bin": b"\x00" * (60 * 2**20)})
    assert len(raw) < 200_000
    with pytest.raises(InvalidInputError, match="zip bomb"):
        A.read_zip(raw)


def test_zip_too_many_files_refused():
    with pytest.raises(InvalidInputError, match="limit is 100"):
        A.read_zip(_zip({f"f{i}.txt": b"x" for i in range(150)}), max_files=100)


def test_not_a_zip():
    with pytest.raises(InvalidInputError, match="not a valid zip"):
        A.read_zip(b"plain text")


def test_is_zip_reads_the_magic_bytes():
    assert A.is_zip(_zip({"a.txt": b"1"}))
    assert not A.is_zip(b"PK")
    assert not A.is_zip(b"\x89PNG\r\n\x1a\n")


# ---------------------------------------------------------------- paths of the command line
def test_read_path_returns_bytes_and_name(tmp_path):
    (tmp_path / "scan.dcm").write_bytes(b"\x00\x01dicom")
    assert A.read_path(tmp_path / "scan.dcm") == (b"\x00\x01dicom", "scan.dcm")
    assert A.read_path(str(tmp_path / "scan.dcm")) == (b"\x00\x01dicom", "scan.dcm")


def test_read_path_refuses_a_folder_and_a_missing_file(tmp_path):
    with pytest.raises(InvalidInputError, match="No such file"):
        A.read_path(tmp_path / "missing.png")
    with pytest.raises(InvalidInputError, match="No such file"):
        A.read_path(tmp_path)


def test_files_from_path_of_a_file(tmp_path):
    (tmp_path / "photo.png").write_bytes(b"png")
    assert A.files_from_path(tmp_path / "photo.png") == [("photo.png", b"png")]


def test_files_from_path_of_a_folder_is_sorted_and_leaves_hidden_files_out(tmp_path):
    for rel, blob in {
        "dogs/2.png": b"2",
        "cats/b/3.png": b"3",
        "cats/1.png": b"1",
        ".DS_Store": b"x",
        "cats/.hidden.png": b"h",
        ".git/config": b"c",
        "__MACOSX/cats/._1.png": b"m",
        "Thumbs.db": b"t",
    }.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(blob)
    assert A.files_from_path(tmp_path) == [("cats/1.png", b"1"), ("cats/b/3.png", b"3"), ("dogs/2.png", b"2")]


def test_files_from_path_holds_a_folder_to_the_file_limit(tmp_path, monkeypatch):
    for i in range(4):
        (tmp_path / f"{i}.png").write_bytes(b"x")
    monkeypatch.setattr(A, "MAX_ARCHIVE_FILES", 4)
    assert len(A.files_from_path(tmp_path)) == 4
    monkeypatch.setattr(A, "MAX_ARCHIVE_FILES", 3)
    with pytest.raises(InvalidInputError, match="holds 4 files; the limit is 3"):
        A.files_from_path(tmp_path)


def test_files_from_path_holds_a_folder_to_the_size_limit(tmp_path, monkeypatch):
    (tmp_path / "a.bin").write_bytes(b"\x00" * 2**20)
    (tmp_path / "b.bin").write_bytes(b"\x00" * 2**20)
    monkeypatch.setattr(A, "MAX_ARCHIVE_BYTES", 2 * 2**20)
    assert [name for name, _ in A.files_from_path(tmp_path)] == ["a.bin", "b.bin"]
    monkeypatch.setattr(A, "MAX_ARCHIVE_BYTES", 2 * 2**20 - 1)
    with pytest.raises(InvalidInputError, match="holds 2 MB; the limit is 2 MB"):
        A.files_from_path(tmp_path)


def test_files_from_path_refuses_a_missing_path(tmp_path):
    with pytest.raises(InvalidInputError, match="No such file or folder"):
        A.files_from_path(tmp_path / "nowhere")
