"""Vision: classify photos into ImageNet categories or your own, explain with SHAP and Grad-CAM, fine-tune.

Plain inputs and outputs (PIL images, bytes, DataFrames, :class:`shap.Explanation`); no Streamlit.
The image tools themselves (preprocessing, heat-maps, faithfulness, fine-tuning) live in
:mod:`lucid.imaging.classifier` and are shared with the Medical imaging page.

Example:
    >>> from lucid.domains.vision.service import VisionService, sample_images
    >>> service = VisionService()                         # cheap; models load on first use
    >>> photos = sample_images(["chelsea", "coffee"])
    >>> table = service.classify(photos, "efficientnet_lite0")      # one row per image, top-5
    >>> result = service.explain(photos["chelsea"], "efficientnet_lite0")  # SHAP + Grad-CAM maps
    >>> result.shap.values.shape, result.faithfulness_table()
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import shap
from PIL import Image

from lucid.core.archives import is_zip, read_zip
from lucid.core.data import IMAGE_EXTENSIONS, read_image
from lucid.core.device import inference_dtype, precision_name
from lucid.core.errors import InvalidInputError, ModelNotFoundError
from lucid.core.store import ModelStore
from lucid.domains.vision.model import (
    GRADCAM_LAYERS,
    VISION_MODELS,
    imagenet_class_names,
    load_efficientnet_lite0,
)
from lucid.imaging.classifier import (
    RECIPE_VERSION,
    FaithfulnessScore,
    FineTuneConfig,
    FineTuneResult,
    ImageClassifier,
    ImagePreprocessing,
    LabelledImages,
    Progress,
    ShouldStop,
    evaluate_classifier,
    faithfulness,
    fine_tune,
    gradcam,
    load_classifier,
    patch_grid,
    save_classifier,
    shap_heatmap,
    top_k_from_probabilities,
)

log = logging.getLogger("lucid.vision")

DOMAIN = "vision"
DEFAULT_MODEL = "efficientnet_lite0"
#: Model evaluations for one SHAP heat-map on the page: 2.2-3.4 s on two CPU cores computing in
#: bfloat16 (docs/vision.md). At 200 the top 20% of the chelsea photo was, on a CPU without AMX, no
#: more telling than random regions (faithfulness -0.054); at 300 every sample photo scored above
#: random at 10% and 20%.
DEFAULT_SHAP_EVALS = 300
#: Sample photos bundled in the scikit-image wheel (others download and fail offline).
SAMPLE_PHOTOS: dict[str, str] = {
    "chelsea": "Chelsea the cat",
    "coffee": "A cup of coffee",
    "astronaut": "Astronaut portrait",
    "rocket": "Rocket on the launch pad",
}


def sample_images(names: Sequence[str] | None = None) -> dict[str, Image.Image]:
    """Sample photos from scikit-image's bundled data, as RGB PIL images keyed by name."""
    from skimage import data as skdata

    chosen = list(names) if names is not None else list(SAMPLE_PHOTOS)
    unknown = [n for n in chosen if n not in SAMPLE_PHOTOS]
    if unknown:
        raise ModelNotFoundError(unknown[0], list(SAMPLE_PHOTOS), kind="sample photo")
    return {n: Image.fromarray(np.asarray(getattr(skdata, n)())).convert("RGB") for n in chosen}


@dataclass(frozen=True)
class UploadedImages:
    """Images decoded from uploads, in order, with the files that could not be used and why."""

    names: list[str]
    images: list[Image.Image]
    problems: list[str]


def read_uploaded_images(files: Sequence[tuple[str, bytes]], *, max_images: int = 500) -> UploadedImages:
    """Decode uploaded images and zips of images; bad files are reported, never fatal.

    Args:
        files: (file name, bytes) pairs; a zip contributes every image inside it (any folder depth).
        max_images: refuse more images than this in one go.

    Raises:
        InvalidInputError: nothing usable at all (the message lists what was wrong), or too many.
    """
    names: list[str] = []
    images: list[Image.Image] = []
    problems: list[str] = []
    for filename, blob in files:
        if is_zip(blob):
            try:
                archive = read_zip(blob)
            except InvalidInputError as exc:
                problems.append(f"{filename}: {exc}")
                continue
            problems.extend(f"{filename}/{s}: skipped" for s in archive.skipped)
            for member in archive.members:
                if not member.name.lower().endswith(IMAGE_EXTENSIONS):
                    problems.append(f"{filename}/{member.path}: not an image file")
                    continue
                _decode_into(f"{filename}/{member.path}", member.data, names, images, problems)
        else:
            _decode_into(filename, blob, names, images, problems)
        if len(images) > max_images:
            raise InvalidInputError(
                f"More than {max_images} images were uploaded; classify them in smaller batches."
            )
    if not images:
        detail = "; ".join(problems[:5]) or "no files"
        raise InvalidInputError(f"No usable image was found ({detail}).")
    return UploadedImages(names, images, problems)


def _decode_into(
    name: str, blob: bytes, names: list[str], images: list[Image.Image], problems: list[str]
) -> None:
    try:
        images.append(read_image(blob, name.rsplit("/", 1)[-1]))
        names.append(name)
    except InvalidInputError as exc:
        problems.append(str(exc) if name.rsplit("/", 1)[-1] in str(exc) else f"{name}: {exc}")


@dataclass
class ImageExplanation:
    """SHAP and Grad-CAM maps of one image for one class, with their faithfulness scores."""

    class_index: int
    class_name: str
    probability: float
    top5: list[tuple[int, str, float]]
    shap: shap.Explanation
    gradcam: shap.Explanation
    shap_faithfulness: list[FaithfulnessScore]
    gradcam_faithfulness: list[FaithfulnessScore]
    shap_seconds: float
    gradcam_seconds: float

    def faithfulness_table(self) -> pd.DataFrame:
        """One row per (method, share blurred): probabilities and drops against random regions."""
        rows = []
        for method, scores in (("SHAP", self.shap_faithfulness), ("Grad-CAM", self.gradcam_faithfulness)):
            for s in scores:
                rows.append(
                    {
                        "method": method,
                        "share blurred": f"{s.fraction:.0%}",
                        "probability": s.original,
                        "after blurring top regions": s.top_blurred,
                        "after blurring random regions": s.random_blurred,
                        "drop (top)": s.top_drop,
                        "drop (random)": s.random_drop,
                        "faithfulness (top - random)": s.score,
                    }
                )
        return pd.DataFrame(rows)

    def region_table(self, cells: int = 7) -> pd.DataFrame:
        """SHAP value summed per square region (``cells`` along each side): the map as numbers."""
        values = np.asarray(self.shap.values, dtype=np.float64)
        ids, n = patch_grid(values.shape, cells)
        sums = np.bincount(ids.ravel(), weights=values.ravel(), minlength=n)
        cols = int(ids[0].max()) + 1
        return pd.DataFrame(
            {
                "region row": np.arange(n) // cols + 1,
                "region column": np.arange(n) % cols + 1,
                "SHAP value": sums,
            }
        )


class VisionService:
    """Load, classify, explain and fine-tune image classifiers (built-in ImageNet model and saved ones).

    Thread-safe: one instance may be shared by all sessions; each model runs under its own lock.

    Args:
        store: where user models are saved (default: ``LUCID_MODEL_DIR``).
        device: default :func:`lucid.core.device.resolve_device`.

    Example:
        >>> service = VisionService()
        >>> service.available_models()
        ['efficientnet_lite0', 'my-cells']
    """

    def __init__(self, store: ModelStore | None = None, device: str | None = None) -> None:
        self.store = store or ModelStore()
        self.device = device
        self._classifiers: dict[str, ImageClassifier] = {}
        self._layers: dict[str, str] = {}
        self._sample_checks: dict[str, str] = {}
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- models
    def available_models(self) -> list[str]:
        """Built-in model names first, then saved ones (newest first)."""
        saved = [m.name for m in self.store.list(DOMAIN) if m.name not in VISION_MODELS]
        return VISION_MODELS.names() + saved

    def check_name(self, name: str) -> None:
        try:
            saved = self.store.exists(DOMAIN, name)
        except InvalidInputError:  # not even a valid name
            saved = False
        if name not in VISION_MODELS and not saved:
            raise ModelNotFoundError(name, self.available_models(), kind="vision model")

    def load(self, name: str = DEFAULT_MODEL) -> ImageClassifier:
        """The classifier of that name, loaded once and kept.

        Raises:
            ModelNotFoundError: neither built in nor saved; the message lists the valid names.
        """
        self.check_name(name)
        with self._lock:
            if name not in self._classifiers:
                if name in VISION_MODELS:
                    spec = VISION_MODELS.get(name)
                    model = VISION_MODELS.create(name)
                    prep = ImagePreprocessing.from_model(model)
                    clf = ImageClassifier(model, prep, imagenet_class_names(), device=self.device)
                    self._layers[name] = spec.extra["gradcam_layer"]
                else:
                    loaded = load_classifier(self.store.load(DOMAIN, name))
                    clf = ImageClassifier(
                        loaded.model, loaded.preprocessing, loaded.class_names, device=self.device
                    )
                    self._layers[name] = loaded.gradcam_layer or GRADCAM_LAYERS.get(
                        loaded.architecture, "bn2"
                    )
                self._classifiers[name] = clf
            return self._classifiers[name]

    def sample_check(self, name: str = DEFAULT_MODEL) -> str:
        """Top-3 on the 'chelsea' and 'coffee' photos in the served precision, and how far float32 differs."""
        with self._lock:
            if name in self._sample_checks:
                return self._sample_checks[name]
        clf = self.load(name)
        photos = sample_images(["chelsea", "coffee"])
        probs = clf.predict_images(list(photos.values()))
        served = precision_name(inference_dtype(clf.device, clf.precision))
        parts = []
        for photo, top in zip(photos, top_k_from_probabilities(probs, clf.class_names, 3), strict=True):
            parts.append(f"'{photo}' -> " + " / ".join(f"{label} {p:.2f}" for _, label, p in top))
        text = "; ".join(parts) + f" (computed in {served})"
        if served != "float32":
            full = ImageClassifier(
                clf.model, clf.preprocessing, clf.class_names, device=clf.device, precision="fp32"
            )
            reference = full.predict_images(list(photos.values()))
            same = bool((reference.argmax(1) == probs.argmax(1)).all())
            text += (
                f"; in float32 the top class is {'the same' if same else 'different'} and probabilities "
                f"differ by at most {float(np.abs(reference - probs).max()):.3f}"
            )
        with self._lock:
            self._sample_checks[name] = text + "."
        return self._sample_checks[name]

    def forget(self, name: str) -> None:
        """Drop a loaded model (e.g. after it was overwritten by a new training run)."""
        with self._lock:
            self._classifiers.pop(name, None)

    def model_card(self, name: str) -> dict[str, Any]:
        """The facts a model card shows: source, licence, data, metrics measured on held-out data, limits."""
        self.check_name(name)
        if name in VISION_MODELS:
            spec = VISION_MODELS.get(name)
            return {
                "Model": spec.title,
                "What it does": spec.description,
                "Architecture": f"timm {spec.extra['architecture']} (preprocessing from timm's data config)",
                "Weights": spec.source,
                "Licence": spec.licence,
                "Training data": spec.data,
                "Published ImageNet top-1": (
                    f"{spec.extra['published_top1']:.1f}% ({spec.extra['published_source']})"
                ),
                "Measured here": (
                    "No ImageNet validation set ships offline, so top-1 was not re-measured. On the bundled "
                    "sample photos, as served now: " + self.sample_check(name)
                ),
                "Explanations": (
                    "SHAP Partition explainer with a blur image masker (values add up to the class "
                    "probability minus the blurred image's); Grad-CAM on layer "
                    f"'{spec.extra['gradcam_layer']}'."
                ),
                "Limits": spec.extra["limits"],
            }
        meta = self.store.load(DOMAIN, name).metadata
        metrics = meta.get("metrics", {})
        config = meta.get("config", {})
        per_class = pd.DataFrame(
            [{"class": c, **v} for c, v in metrics.get("per_class", {}).items()],
        )
        return {
            "Model": f"{name} (fine-tuned by a user)",
            "Base model": (
                f"{meta.get('base_model')} with ImageNet weights ({VISION_MODELS.get(DEFAULT_MODEL).licence})"
            ),
            "Classes": ", ".join(meta.get("class_names", [])),
            "Training": (
                f"{config.get('mode', '?')} fine-tuning, {config.get('epochs', '?')} epochs; "
                f"images train/validation/test: {meta.get('split_sizes')}"
            ),
            "Test accuracy (held-out)": metrics.get("accuracy"),
            "Majority-class baseline on the same test images": metrics.get("majority_baseline_accuracy"),
            "Per-class precision and recall (test)": per_class,
            "Data fingerprint": meta.get("data_hash"),
            "Created": meta.get("created"),
            "Recipe version": meta.get("recipe_version"),
            "Limits": (
                "Knows only the classes it was trained on and always picks one of them; accuracy holds only "
                "for images like the training ones."
            ),
        }

    # ---------------------------------------------------------------- classify
    def classify(
        self,
        images: Mapping[str, Image.Image] | Sequence[tuple[str, Image.Image]],
        model: str = DEFAULT_MODEL,
        *,
        k: int = 5,
    ) -> pd.DataFrame:
        """Top-``k`` classes for every image, one row each (batched inference).

        Returns:
            Columns ``image``, ``top1``, ``probability``, then ``class_i``/``prob_i`` for i = 1..k.
        """
        items = list(images.items()) if isinstance(images, Mapping) else list(images)
        if not items:
            raise InvalidInputError("No images to classify.")
        clf = self.load(model)
        probs = clf.predict_images([im for _, im in items])
        ranked = top_k_from_probabilities(probs, clf.class_names, k)
        rows = []
        for (name, _), top in zip(items, ranked, strict=True):
            row: dict[str, Any] = {"image": name, "top1": top[0][1], "probability": top[0][2]}
            for i, (_, cls, p) in enumerate(top, start=1):
                row[f"class_{i}"] = cls
                row[f"prob_{i}"] = p
            rows.append(row)
        return pd.DataFrame(rows)

    # ---------------------------------------------------------------- explain
    def class_names(self, model: str = DEFAULT_MODEL) -> list[str]:
        return list(self.load(model).class_names)

    def explain(
        self,
        image: Image.Image | np.ndarray,
        model: str = DEFAULT_MODEL,
        *,
        class_index: int | None = None,
        max_evals: int = DEFAULT_SHAP_EVALS,
        fractions: Sequence[float] = (0.1, 0.2),
    ) -> ImageExplanation:
        """SHAP and Grad-CAM heat-maps for one image and one class (default: the top class).

        Both maps come with faithfulness scores: the class probability's fall when the top 10% / 20%
        of the image by attribution is blurred, against random regions of the same size.
        """
        clf = self.load(model)
        view = clf.preprocessing.view(image)
        probs = clf.predict_views(view[None])[0]
        top5 = top_k_from_probabilities(probs[None], clf.class_names, 5)[0]
        k = int(top5[0][0]) if class_index is None else int(class_index)
        if not 0 <= k < len(clf.class_names):
            raise InvalidInputError(f"Class index {k} is out of range (0-{len(clf.class_names) - 1}).")
        name = clf.class_names[k]
        t0 = time.perf_counter()
        shap_map = shap_heatmap(clf.predict_views, view, k, max_evals=max_evals, class_name=name)
        t1 = time.perf_counter()
        cam = gradcam(
            clf.model,
            clf.preprocessing,
            view,
            k,
            layer=self._layers[model],
            device=clf.device,
            lock=clf.lock,
            class_name=name,
        )
        t2 = time.perf_counter()
        return ImageExplanation(
            class_index=k,
            class_name=name,
            probability=float(probs[k]),
            top5=top5,
            shap=shap_map,
            gradcam=cam,
            shap_faithfulness=faithfulness(clf.predict_views, view, shap_map.values, k, fractions=fractions),
            gradcam_faithfulness=faithfulness(clf.predict_views, view, cam.values, k, fractions=fractions),
            shap_seconds=t1 - t0,
            gradcam_seconds=t2 - t1,
        )

    # ---------------------------------------------------------------- train
    def train(
        self,
        data: LabelledImages,
        name: str,
        config: FineTuneConfig = FineTuneConfig(),
        *,
        progress: Progress | None = None,
        should_stop: ShouldStop | None = None,
        save: bool = True,
    ) -> FineTuneResult:
        """Fine-tune the ImageNet EfficientNet-Lite0 on labelled images and save it under ``name``.

        Raises:
            InvalidInputError: the name is invalid or is a built-in model's.
            TrainingError: one class only, or a class with fewer than three images.
            TrainingCancelled: ``should_stop`` returned true; nothing was saved.
        """
        from lucid.core.store import validate_name

        clean = validate_name(name)
        if clean in VISION_MODELS:
            raise InvalidInputError(f"'{clean}' is the name of a built-in model; choose another name.")
        backbone = load_efficientnet_lite0()  # a fresh copy: the shared default model stays untouched
        prep = ImagePreprocessing.from_model(backbone)
        result = fine_tune(
            backbone, prep, data, config, device=self.device, progress=progress, should_stop=should_stop
        )
        if save:
            save_classifier(
                self.store,
                DOMAIN,
                clean,
                result.model,
                architecture="tf_efficientnet_lite0",
                class_names=result.class_names,
                preprocessing=result.preprocessing,
                reserved_names=VISION_MODELS.names(),
                gradcam_layer=GRADCAM_LAYERS["tf_efficientnet_lite0"],
                metadata={
                    "metrics": result.metrics,
                    "history": result.history,
                    "split_sizes": result.split_sizes,
                    "config": result.config.as_dict(),
                    "data_hash": result.data_hash,
                    "recipe_version": RECIPE_VERSION,
                    "train_seconds": result.seconds,
                },
            )
            self.forget(clean)
        return result

    def evaluate(self, data: LabelledImages, model: str = DEFAULT_MODEL) -> dict[str, Any]:
        """Accuracy, per-class precision/recall and confusion matrix of a model on labelled images."""
        return evaluate_classifier(self.load(model), data)


# -------------------------------------------------------------------- make models
def ensure_default_models(progress: Progress | None = None, store: ModelStore | None = None) -> list[str]:
    """Check the built-in model: its packaged weights load and it recognises the sample photos.

    Nothing needs training for the ImageNet default, so nothing is written to the store.

    Returns:
        The names of the built-in models that are ready.

    Raises:
        RuntimeError: the weights loaded but the sanity predictions are wrong.
    """
    if progress:
        progress(0.1, "Loading EfficientNet-Lite0 ImageNet weights")
    service = VisionService(store)
    table = service.classify(sample_images(["chelsea", "coffee"]), DEFAULT_MODEL, k=5)
    top = dict(zip(table["image"], table["top1"], strict=True))
    if top["chelsea"] not in {"tiger cat", "Egyptian cat", "tabby, tabby cat"} or top["coffee"] != "espresso":
        raise RuntimeError(f"The ImageNet weights gave unexpected predictions: {top}")
    if progress:
        progress(1.0, f"EfficientNet-Lite0 ready (chelsea -> {top['chelsea']}, coffee -> {top['coffee']})")
    return [DEFAULT_MODEL]
