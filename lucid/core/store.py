"""The model store: where default and user-trained models are kept on disk.

Layout: ``<root>/<domain>/<name>/`` holding the model's files (safetensors for torch weights,
XGBoost's own JSON, plain JSON for configs; never pickle) and ``metadata.json``. A model is
written into a hidden temporary folder beside its final place and renamed into place in one step,
so a crash never leaves half a model behind. The root is ``LUCID_MODEL_DIR`` (default
``~/.cache/lucid/models``).

Example:
    >>> store = ModelStore(tmp_path)
    >>> store.save("finance", "my-model", lambda folder: (folder / "m.json").write_text("{}"),
    ...            {"base_model": "xgboost"})
    >>> store.list("finance")[0].name
    'my-model'
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from lucid.core.errors import InvalidInputError, ModelNotFoundError

ENV_VAR = "LUCID_MODEL_DIR"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\- ]{0,63}$")
METADATA_FILE = "metadata.json"


def default_root() -> Path:
    """The store's root folder: ``LUCID_MODEL_DIR`` or ``~/.cache/lucid/models``."""
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "lucid" / "models"


def validate_name(name: str) -> str:
    """Return the stripped name if it is a safe model name, else raise with the rule."""
    name = (name or "").strip()
    if not NAME_PATTERN.match(name) or name.endswith(".") or ".." in name:
        raise InvalidInputError(
            "A model name must be 1-64 characters: letters, digits, spaces, '_', '-' or '.', "
            "starting with a letter or digit."
        )
    return name


def data_hash(*parts: bytes | str) -> str:
    """A short SHA-256 of the training data, recorded in the metadata."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class StoredModel:
    """A model found in the store: its domain, name, folder and metadata."""

    domain: str
    name: str
    path: Path
    metadata: dict[str, Any]


class ModelStore:
    """Atomic, pickle-free storage of trained models with a metadata JSON each."""

    _lock = threading.Lock()

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()

    def _domain_dir(self, domain: str) -> Path:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", domain):
            raise InvalidInputError(f"Invalid domain '{domain}'.")
        return self.root / domain

    def path(self, domain: str, name: str) -> Path:
        """The folder a model of this name lives in (whether or not it exists)."""
        return self._domain_dir(domain) / validate_name(name)

    def exists(self, domain: str, name: str) -> bool:
        return (self.path(domain, name) / METADATA_FILE).is_file()

    def save(
        self,
        domain: str,
        name: str,
        write_files: Callable[[Path], None],
        metadata: dict[str, Any],
        *,
        overwrite: bool = True,
    ) -> StoredModel:
        """Write a model atomically.

        Args:
            domain: e.g. ``"finance"``.
            name: the user's name for the model (validated).
            write_files: called with an empty temporary folder; writes the model's files into it.
            metadata: JSON-serialisable facts (metrics, base model, data hash, labels, ...);
                ``name``, ``domain`` and ``created`` are added.
            overwrite: replace an existing model of the same name.

        Raises:
            InvalidInputError: bad name, or the name is taken and ``overwrite`` is false.
        """
        final = self.path(domain, name)
        if final.exists() and not overwrite:
            raise InvalidInputError(f"A {domain} model named '{name}' already exists.")
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            write_files(tmp)
            meta = {
                **metadata,
                "name": final.name,
                "domain": domain,
                "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            }
            (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=2, default=_json_default))
            with self._lock:
                old = None
                if final.exists():
                    old = final.parent / f".old-{uuid.uuid4().hex}"
                    os.replace(final, old)
                os.replace(tmp, final)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return StoredModel(domain, final.name, final, meta)

    def load(self, domain: str, name: str) -> StoredModel:
        """Find a saved model. Raises :class:`ModelNotFoundError` listing the saved names."""
        folder = self.path(domain, name) if NAME_PATTERN.match((name or "").strip()) else None
        if folder is None or not (folder / METADATA_FILE).is_file():
            raise ModelNotFoundError(name, [m.name for m in self.list(domain)], kind=f"saved {domain} model")
        meta = json.loads((folder / METADATA_FILE).read_text())
        return StoredModel(domain, folder.name, folder, meta)

    def list(self, domain: str) -> list[StoredModel]:
        """Saved models of a domain, newest first."""
        folder = self._domain_dir(domain)
        if not folder.is_dir():
            return []
        found = []
        for child in folder.iterdir():
            meta_file = child / METADATA_FILE
            if child.name.startswith(".") or not meta_file.is_file():
                continue
            try:
                meta = json.loads(meta_file.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            found.append(StoredModel(domain, child.name, child, meta))
        return sorted(found, key=lambda m: m.metadata.get("created", ""), reverse=True)

    def delete(self, domain: str, name: str) -> None:
        """Remove a saved model."""
        folder = self.load(domain, name).path
        trash = folder.parent / f".old-{uuid.uuid4().hex}"
        os.replace(folder, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def rename(self, domain: str, old: str, new: str) -> StoredModel:
        """Give a saved model another name (its folder is moved in one step; metadata says the old name).

        Raises:
            ModelNotFoundError: no saved model called ``old``.
            InvalidInputError: ``new`` is not a valid name or is taken.
        """
        stored = self.load(domain, old)
        target = self.path(domain, new)
        with self._lock:
            if target.exists():
                raise InvalidInputError(f"A {domain} model named '{target.name}' already exists.")
            os.replace(stored.path, target)
        meta = {**stored.metadata, "name": target.name, "renamed_from": stored.name}
        tmp = target / f".{METADATA_FILE}.{uuid.uuid4().hex}"
        tmp.write_text(json.dumps(meta, indent=2, default=_json_default))
        os.replace(tmp, target / METADATA_FILE)
        return StoredModel(domain, target.name, target, meta)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (Path, dt.datetime, dt.date)):
        return str(value)
    raise TypeError(f"Not JSON serialisable: {type(value).__name__}")


_S = TypeVar("_S")
_shared_services: dict[tuple[object, str], Any] = {}
_shared_lock = threading.Lock()


def shared_service(cls: Callable[[ModelStore], _S], root: str | Path | None = None) -> _S:
    """The process's one instance of a domain service for a model store (default :func:`default_root`).

    The app's pages (every session) and the batch workers running in this process get the same
    instance, so each model is loaded once per process and per store. Services are thread-safe.

    Args:
        cls: the service class, constructed as ``cls(ModelStore(root))``.
        root: the store's root folder; paths naming the same folder share one instance.
    """
    key = (cls, str(Path(root if root is not None else default_root()).expanduser().resolve()))
    with _shared_lock:
        service = _shared_services.get(key)
        if service is None:
            service = _shared_services[key] = cls(ModelStore(key[1]))
    return service


def clear_shared_services() -> None:
    """Forget every shared service (its models are freed once nothing else holds them)."""
    with _shared_lock:
        _shared_services.clear()
