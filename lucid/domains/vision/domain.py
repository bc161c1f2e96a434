"""The image-classification domain: the page, the commands and the batch job over :class:`VisionService`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lucid.core.errors import InvalidInputError
from lucid.core.progress import Progress
from lucid.core.store import ModelStore, shared_service
from lucid.domains.base import Domain, Option, Request
from lucid.domains.vision.batch import VisionBatch
from lucid.domains.vision.explain import DEFAULT_SHAP_EVALS
from lucid.domains.vision.service import DEFAULT_MODEL, VisionService
from lucid.imaging.datasets import LabelledImages, labelled_images_from_folder, labelled_images_from_zip
from lucid.imaging.training import FineTuneConfig

log = logging.getLogger("lucid.vision")


def labelled_from_path(path: str) -> LabelledImages:
    """Labelled images from a folder of class folders, or a zip of them (or with a labels CSV)."""
    p = Path(path)
    if p.is_dir():
        return labelled_images_from_folder(p)
    if p.is_file():
        return labelled_images_from_zip(p.read_bytes())
    raise InvalidInputError(f"No such file or folder: {path}")


def _log_epochs(fraction: float, message: str) -> None:
    if message.startswith("Epoch") and "loss" in message or message.startswith("Test"):
        log.info(message)


class VisionDomain(Domain):
    name = "vision"
    title = "Image classification"
    icon = ":material/image:"
    audience = "Product and operations teams"
    summary = (
        "Classify photos into 1,000 everyday categories, see which regions of the picture drove each "
        "prediction, and adapt the model to your own categories from a few hundred labelled images."
    )
    page = "app_pages/vision.py"
    input_kind = "images"
    default_model = DEFAULT_MODEL
    options = (
        Option("--mode", "train the head or every layer", ("train",), "head", choices=("head", "full")),
        Option("--epochs", "training epochs", ("train",), 5, int),
        Option("--batch-size", "images per training step", ("train",), 32, int),
        Option("--image-size", "square input size (default 224)", ("train",), None, int),
        Option("--no-augment", "turn augmentation off", ("train",), flag_only=True),
        Option("--vflip", "also flip vertically (microscopy, aerial)", ("train",), flag_only=True),
        Option("--top-k", "classes listed per image", ("score",), 5, int),
        Option("--max-evals", "SHAP budget per image", ("score",), DEFAULT_SHAP_EVALS, int),
    )
    batch = VisionBatch()

    def service(self, store: ModelStore | None = None) -> VisionService:
        return shared_service(VisionService, store.root if store else None)

    def run(self, request: Request, progress: Progress = None) -> dict[str, Any]:
        """``train`` / ``evaluate`` on a folder or zip of class folders.

        ``train`` saves the model when it passes the quality gate, or with ``request.save_anyway``;
        its summary says whether it was saved and carries the gate.
        """
        service = shared_service(VisionService)
        if request.command == "train":
            config = FineTuneConfig(
                mode=request.option("mode", "head"),
                epochs=int(request.option("epochs", 5)),
                batch_size=int(request.option("batch_size", 32)),
                image_size=request.option("image_size"),
                augment=not request.option("no_augment", False),
                vflip=bool(request.option("vflip", False)),
            )
            name = request.name or ""
            trained = service.train(
                labelled_from_path(request.data),
                name,
                config,
                progress=progress or _log_epochs,
                save_anyway=request.save_anyway,
            )
            result = trained.result
            return {
                "name": trained.name,
                "saved": trained.saved,
                "beats_baseline": trained.gate.beats_baseline,
                "quality_gate": trained.gate.as_dict(),
                "verdict": trained.gate.verdict(),
                "caveats": trained.gate.caveats(),
                "accuracy": result.metrics["accuracy"],
                "majority_baseline_accuracy": result.metrics["majority_baseline_accuracy"],
                "macro_f1": result.metrics["macro_f1"],
                "per_class": result.metrics["per_class"],
                "confusion_matrix": result.metrics["confusion_matrix"],
                "class_names": result.class_names,
                "split_sizes": result.split_sizes,
                "seconds": round(result.seconds, 1),
            }
        if request.command == "evaluate":
            return service.evaluate(labelled_from_path(request.data), request.model or DEFAULT_MODEL)
        raise InvalidInputError(f"Unknown command '{request.command}'.")
