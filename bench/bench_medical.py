"""Medical imaging benchmark: our path against a plain baseline, side by side, in one run.

1. A 512 x 512 CT slice as DICOM bytes -> load + window + classify + Grad-CAM (ours: the service,
   with rescale, windowing presets, de-identified metadata and the shared Grad-CAM) against a plain
   pydicom + numpy window + model forward with no explanation.
2. Fine-tuning on BCCD blood-cell crops (../shared/data/bccd, BCCD's own image-level split): the
   shared head fine-tuning of EfficientNet-Lite0 with calibration and medical metrics, against a
   logistic regression on raw pixels and the majority class, on the same test crops.

    python -m bench.bench_medical            # prints a table, writes bench/results/medical.json
"""

from __future__ import annotations

import io
import json
import os
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pydicom  # noqa: E402
import torch  # noqa: E402
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid  # noqa: E402

from lucid.core.store import ModelStore  # noqa: E402
from lucid.domains.medical.data import bccd_cell_crops  # noqa: E402
from lucid.domains.medical.model import MEDICAL_MODELS, prepare_input  # noqa: E402
from lucid.domains.medical.reading import load_scan  # noqa: E402
from lucid.domains.medical.service import MedicalService  # noqa: E402
from lucid.domains.medical.training import ScanTrainConfig, train_on_scans  # noqa: E402
from lucid.domains.medical.windowing import WINDOW_PRESETS, render_slice  # noqa: E402

REPEATS = 5


def ct_slice_bytes(size: int = 512) -> bytes:
    """A synthetic 512 x 512 head CT slice (air, skull, brain, a denser lesion) as DICOM bytes."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    r = np.sqrt(((yy - size / 2) / (0.42 * size)) ** 2 + ((xx - size / 2) / (0.36 * size)) ** 2)
    hu = np.full((size, size), -1000.0, dtype=np.float32)
    hu[r < 1.0] = 35.0
    hu[(r >= 0.92) & (r < 1.0)] = 900.0
    hu[np.hypot(yy - 0.4 * size, xx - 0.58 * size) < 0.06 * size] = 70.0
    hu += np.random.default_rng(0).normal(0, 5, hu.shape).astype(np.float32)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientName, ds.PatientID = "CT", "Bench^Phantom", "BENCH-1"
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.WindowCenter, ds.WindowWidth = 40, 80
    ds.PixelData = np.clip(hu + 1024, 0, 65535).astype(np.uint16).tobytes()
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def bench_slice(service: MedicalService) -> dict:
    data = ct_slice_bytes()
    model_name = "phydcm_brain_mri"
    service.load(model_name)  # loading weights is a one-off; both paths use a loaded model
    plain_model = MEDICAL_MODELS.create(model_name)

    def ours() -> tuple[str, float]:
        scan = load_scan(data, "slice.dcm")
        image = render_slice(scan, scan.slice(0), *WINDOW_PRESETS["Brain"])
        prediction = service.classify(image, model_name)
        service.gradcam(prediction.model_image, model_name, prediction.class_index)
        return prediction.label, float(prediction.probabilities.max())

    def baseline() -> tuple[str, float]:
        ds = pydicom.dcmread(io.BytesIO(data))
        hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        grey = (np.clip((hu - (40 - 80 / 2)) / 80.0, 0, 1) * 255).astype(np.uint8)  # brain window 40/80
        probs = plain_model.predict_proba(prepare_input(np.repeat(grey[..., None], 3, axis=-1)))[0]
        return MEDICAL_MODELS.get(model_name).labels[int(probs.argmax())], float(probs.max())

    timings = {}
    outputs = {}
    for label, fn in (("ours", ours), ("baseline", baseline)):
        fn()  # warm-up
        runs = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            outputs[label] = fn()
            runs.append(time.perf_counter() - start)
        timings[label] = statistics.median(runs)
    return {
        "ours_seconds": timings["ours"],
        "baseline_seconds": timings["baseline"],
        "ratio": timings["ours"] / timings["baseline"],
        "ours_prediction": outputs["ours"],
        "baseline_prediction": outputs["baseline"],
        "what": "512x512 CT DICOM: load + window + classify + Grad-CAM (ours) vs pydicom + numpy + forward",
    }


def bench_bccd() -> dict:
    from sklearn.linear_model import LogisticRegression

    folder = Path(os.environ.get("LUCID_SHARED_DATA", ROOT.parent / "shared" / "data")) / "bccd"
    crops = bccd_cell_crops(folder, per_class={"train": 60, "val": 20, "test": 40})
    split = np.asarray(crops.data.split)
    config = ScanTrainConfig(epochs=3, image_size=96, batch_size=16, mode="head")
    start = time.perf_counter()
    result = train_on_scans(crops, config)
    ours_seconds = time.perf_counter() - start
    m = result.metrics

    def pixels(i: int) -> np.ndarray:
        return (
            np.asarray(crops.data.images[i].convert("RGB").resize((32, 32)), dtype=np.float32).ravel() / 255
        )

    train_idx, test_idx = np.flatnonzero(split == "train"), np.flatnonzero(split == "test")
    x_train = np.stack([pixels(i) for i in train_idx])
    x_test = np.stack([pixels(i) for i in test_idx])
    labels = np.asarray(crops.data.labels)
    start = time.perf_counter()
    baseline = LogisticRegression(max_iter=2000).fit(x_train, labels[train_idx])
    baseline_seconds = time.perf_counter() - start
    baseline_accuracy = float((baseline.predict(x_test) == labels[test_idx]).mean())
    return {
        "n_train": int(len(train_idx)),
        "n_val": int((split == "val").sum()),
        "n_test": int(len(test_idx)),
        "epoch_seconds": m["epoch_seconds"],
        "ours_total_seconds": ours_seconds,
        "ours_accuracy": m["accuracy"],
        "ours_macro_auc": m["macro_auc"],
        "ours_ece_uncalibrated": m["ece_uncalibrated"],
        "ours_ece_calibrated": m["ece"],
        "temperature": m["temperature"],
        "baseline_logreg_accuracy": baseline_accuracy,
        "baseline_logreg_seconds": baseline_seconds,
        "majority_accuracy": m["majority_baseline_accuracy"],
        "accuracy_ratio_vs_logreg": m["accuracy"] / max(baseline_accuracy, 1e-9),
        "groups_in_train_and_test": m["groups_in_train_and_test"],
        "per_class": m["per_class"],
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    store_dir = ROOT / "bench" / "results" / "medical_store"
    service = MedicalService(ModelStore(store_dir))
    slice_result = bench_slice(service)
    bccd_result = bench_bccd()
    print("Medical imaging benchmark (research demo, not for clinical use)")
    print(f"{'task':<52}{'ours':>12}{'baseline':>12}{'ratio':>8}")
    print(
        f"{'512x512 DICOM: load+window+classify(+Grad-CAM), s':<52}"
        f"{slice_result['ours_seconds']:>12.3f}{slice_result['baseline_seconds']:>12.3f}"
        f"{slice_result['ratio']:>8.2f}"
    )
    print(
        f"{'BCCD cells: test accuracy (ours vs pixel logreg)':<52}"
        f"{bccd_result['ours_accuracy']:>12.3f}{bccd_result['baseline_logreg_accuracy']:>12.3f}"
        f"{bccd_result['accuracy_ratio_vs_logreg']:>8.2f}"
    )
    print(f"{'BCCD cells: majority-class accuracy':<52}{'':>12}{bccd_result['majority_accuracy']:>12.3f}")
    print(f"{'BCCD cells: fine-tuning epoch time, s (head, 96 px)':<52}{bccd_result['epoch_seconds']:>12.2f}")
    print(
        f"{'BCCD cells: ECE before -> after temperature':<52}"
        f"{bccd_result['ours_ece_uncalibrated']:>12.3f}{bccd_result['ours_ece_calibrated']:>12.3f}"
    )
    out = ROOT / "bench" / "results" / "medical.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"slice": slice_result, "bccd": bccd_result}, indent=2, default=str))
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
