"""Versions of the key libraries, for the Home page and reports."""

from __future__ import annotations

from importlib import metadata

KEY_PACKAGES = (
    "streamlit",
    "torch",
    "torchvision",
    "transformers",
    "timm",
    "shap",
    "xgboost",
    "scikit-learn",
    "pandas",
    "plotly",
    "pydicom",
)


def library_versions(packages: tuple[str, ...] = KEY_PACKAGES) -> dict[str, str]:
    """Installed version of each package, or "not installed"."""
    found = {}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found
