"""The Vision page's cached computations (per process): sample photos, decoded uploads, predictions,
explanations and the batch report, keyed by the model's stamp and the images' digest."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from lucid.domains.vision.data import UploadedImages, read_uploaded_images, sample_images
from lucid.domains.vision.explain import ImageExplanation
from lucid.domains.vision.service import VisionService
from lucid.ui.vision_reports import batch_report


@st.cache_data(show_spinner=False, max_entries=8)
def load_samples(names: tuple[str, ...]) -> list[tuple[str, np.ndarray]]:
    """The chosen sample photos as (name, pixels)."""
    return [(name, np.asarray(img)) for name, img in sample_images(list(names)).items()]


@st.cache_data(show_spinner=False, max_entries=8)
def sample_files(names: tuple[str, ...]) -> tuple[tuple[str, bytes], ...]:
    """The sample photos as PNG files (lossless: they decode to the pixels the page classifies)."""
    files = []
    for name, arr in load_samples(names):
        buffer = io.BytesIO()
        Image.fromarray(arr).save(buffer, format="PNG")
        files.append((name, buffer.getvalue()))
    return tuple(files)


@st.cache_data(show_spinner=False, max_entries=8)
def decode_uploads(files: tuple[tuple[str, bytes], ...]) -> UploadedImages:
    """The uploaded files decoded (zips opened), with the problems of those that were skipped."""
    return read_uploaded_images(list(files))


@st.cache_data(show_spinner=False, max_entries=32)
def classify_images(
    _service: VisionService, model: str, stamp: str, digest: str, _items: list[tuple[str, np.ndarray]]
) -> pd.DataFrame:
    """Top 5 of every image; ``stamp`` and ``digest`` stand for the model and the unhashed images."""
    return _service.classify([(name, Image.fromarray(arr)) for name, arr in _items], model, k=5)


@st.cache_data(show_spinner=False, max_entries=32)
def explain_image(
    _service: VisionService,
    model: str,
    stamp: str,
    digest: str,
    class_index: int,
    max_evals: int,
    _image: np.ndarray,
) -> ImageExplanation:
    """SHAP and Grad-CAM of one image for one class (the opacity slider redraws without recomputing)."""
    return _service.explain(Image.fromarray(_image), model, class_index=class_index, max_evals=max_evals)


@st.cache_data(show_spinner="Preparing the HTML report...", max_entries=8)
def batch_report_html(
    model: str, stamp: str, digest: str, _table: pd.DataFrame, _items: list[tuple[str, np.ndarray]]
) -> str:
    """The batch report, built once per model and set of images (its thumbnails take a while)."""
    return batch_report(model, _table, _items)


def forget_models() -> None:
    """Drop every cached result that names a model (after a model was saved, renamed or deleted)."""
    classify_images.clear()
    explain_image.clear()
    batch_report_html.clear()
