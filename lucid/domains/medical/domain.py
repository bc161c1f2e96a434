"""The medical-imaging domain: the page, the commands and the batch job over :class:`MedicalService`."""

from __future__ import annotations

from typing import Any

from lucid.core.archives import read_path
from lucid.core.errors import InvalidInputError
from lucid.core.progress import Progress
from lucid.core.store import ModelStore, shared_service
from lucid.domains.base import Domain, Option, Request
from lucid.domains.medical.batch import MedicalBatch
from lucid.domains.medical.data import labelled_scans_from_zip
from lucid.domains.medical.service import DEFAULT_MODEL, MedicalService
from lucid.domains.medical.training import ScanTrainConfig


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    keep = ("accuracy", "majority_baseline_accuracy", "macro_auc", "ece", "temperature", "n_test")
    out = {k: metrics[k] for k in keep if k in metrics}
    out["per_class"] = metrics.get("per_class", {})
    out["confusion_matrix"] = metrics.get("confusion_matrix")
    return out


class MedicalDomain(Domain):
    name = "medical"
    title = "Medical imaging"
    icon = ":material/radiology:"
    audience = "Clinical researchers and health-tech product teams (research demo, not for clinical use)"
    summary = (
        "Open DICOM, NIfTI or PNG scans with proper windowing and with patient details hidden, run a "
        "demo brain-MRI classifier, see where it looked, and train a model on your own labelled scans."
    )
    page = "app_pages/medical.py"
    input_kind = "images"
    default_model = DEFAULT_MODEL
    options = (
        Option("--window", "file (the file's own window, else automatic), auto, or a CT preset name"),
        Option("--epochs", "training epochs", ("train",), 3, int),
        Option("--image-size", "square input size", ("train",), 224, int),
        Option("--batch-size", "scans per training step", ("train",), 32, int),
        Option("--mode", "train every layer or the head", ("train",), "full", choices=("full", "head")),
        Option("--threshold", "decision threshold for sensitivity", ("train", "evaluate"), 0.5, float),
    )
    batch = MedicalBatch()

    def service(self, store: ModelStore | None = None) -> MedicalService:
        return shared_service(MedicalService, store.root if store else None)

    def run(self, request: Request, progress: Progress = None) -> dict[str, Any]:
        """``train`` or ``evaluate`` on a zip of labelled scans."""
        data, _ = read_path(request.data)
        service = shared_service(MedicalService)
        window = request.option("window")
        threshold = float(request.option("threshold", 0.5))
        if request.command == "train":
            labelled = labelled_scans_from_zip(data, window=window or "file")
            config = ScanTrainConfig(
                epochs=int(request.option("epochs", 3)),
                image_size=int(request.option("image_size", 224)),
                batch_size=int(request.option("batch_size", 32)),
                threshold=threshold,
                mode=request.option("mode", "full"),
            )
            _, result = service.train(
                labelled, request.name or "", config, progress=progress, save_anyway=request.save_anyway
            )
            gate = result.gate
            out: dict[str, Any] = {
                "model": result.name,
                "saved": result.saved,
                "beats_baseline": bool(gate and gate.beats_baseline),
                "quality_gate": gate.as_dict() if gate else None,
                **_summary(result.metrics),
                "epoch_seconds": result.metrics["epoch_seconds"],
            }
            if gate and not result.saved:
                out["message"] = f"Not saved. {gate.verdict()} Run again with --save-anyway to keep it."
            return out
        name = service.check_name(request.model or DEFAULT_MODEL)
        if request.command == "evaluate":
            labelled = labelled_scans_from_zip(data, window=window or service.window_for(name))
            return {"model": name, **_summary(service.evaluate(labelled, name, threshold=threshold))}
        raise InvalidInputError(f"Unknown command '{request.command}'.")
