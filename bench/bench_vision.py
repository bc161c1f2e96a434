"""Benchmark of the Vision path against plain timm / shap usage, side by side in one run.

1. Batch classification: images of mixed sizes classified by a plain per-image loop (timm's eval
   transform, one float32 forward pass per image) against our batched path (views made in two
   threads; batches of 8, channels-last, BatchNorm folded into the convolutions, in the device's
   precision: bfloat16 on CPUs with AVX-512 BF16), and the same
   batched path forced to float32 to show what batching alone gives. Same weights, same images; top-1
   agreement and the largest probability difference against the plain loop are reported.
2. SHAP heat-map: shap's Partition explainer called with its defaults (500 evaluations) against our
   budget (300 evaluations, larger batches), with the same blur masker; time and faithfulness
   (probability drop when the top 10% / 20% is blurred, minus the drop for random regions).
3. Grad-CAM on the last convolutional stage: median time.
4. Head fine-tuning on BCCD blood-cell crops (../shared/data/bccd): seconds per epoch, test accuracy
   against the majority class.

Run: ``.venv/bin/python -m bench.bench_vision [--runs 3] [--images 32] [--per-class 100]
[--photos chelsea,coffee] [--skip-training]``.
Writes ``bench/results/vision.json``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import shap
import torch
from PIL import Image, ImageOps

from bench.timing import timed_runs
from lucid.core.device import inference_dtype, precision_name
from lucid.domains.vision.data import sample_images
from lucid.domains.vision.explain import DEFAULT_SHAP_EVALS
from lucid.domains.vision.model import imagenet_class_names
from lucid.explain.image import blur_image, faithfulness, gradcam, shap_heatmap
from lucid.imaging.backbones import load_efficientnet_lite0
from lucid.imaging.classifier import ImageClassifier
from lucid.imaging.datasets import LabelledImages, load_voc_crops
from lucid.imaging.preprocess import ImagePreprocessing
from lucid.imaging.training import FineTuneConfig, fine_tune

ROOT = Path(__file__).resolve().parent.parent


def bench_images(n: int) -> list[Image.Image]:
    """Sample photos and flipped / cropped variants of them, at their own (different) sizes."""
    photos = list(sample_images().values())
    out: list[Image.Image] = []
    k = 0
    while len(out) < n:
        img = photos[k % len(photos)]
        variant = k // len(photos)
        if variant % 2:
            img = ImageOps.mirror(img)
        if variant % 3 == 2:
            w, h = img.size
            img = img.crop((w // 10, h // 10, w - w // 10, h - h // 10))
        out.append(img)
        k += 1
    return out


def classification(args: argparse.Namespace) -> dict:
    images = bench_images(args.images)
    plain = load_efficientnet_lite0()
    transform = ImagePreprocessing.from_model(plain).eval_transform()

    def per_image_loop() -> np.ndarray:
        out = []
        with torch.inference_mode():
            for img in images:
                out.append(plain(transform(img)[None]).softmax(dim=-1)[0].numpy())
        return np.stack(out)

    ours_model = load_efficientnet_lite0()
    clf = ImageClassifier(ours_model, ImagePreprocessing.from_model(ours_model), imagenet_class_names())
    fp32 = ImageClassifier(ours_model, clf.preprocessing, clf.class_names, precision="fp32")

    t_loop, probs_loop = timed_runs(lambda: per_image_loop(), args.runs)
    t_ours, probs_ours = timed_runs(lambda: clf.predict_images(images), args.runs)
    t_fp32, probs_fp32 = timed_runs(lambda: fp32.predict_images(images), args.runs)
    top_loop = probs_loop.argmax(axis=1)
    return {
        "images": len(images),
        "precision": precision_name(inference_dtype(clf.device)),
        "per_image_loop_images_per_s": len(images) / t_loop,
        "ours_batched_images_per_s": len(images) / t_ours,
        "ours_batched_fp32_images_per_s": len(images) / t_fp32,
        "speedup": t_loop / t_ours,
        "speedup_fp32": t_loop / t_fp32,
        "top1_agreement": float(np.mean(top_loop == probs_ours.argmax(axis=1))),
        "max_probability_difference": float(np.abs(probs_loop - probs_ours).max()),
        "top1_agreement_fp32": float(np.mean(top_loop == probs_fp32.argmax(axis=1))),
        "_classifier": clf,
    }


def explanations(clf: ImageClassifier, args: argparse.Namespace) -> dict:
    rows = []
    for name, img in sample_images(args.photos.split(",")).items():
        view = clf.preprocessing.view(img)
        k = int(clf.predict_views(view[None])[0].argmax())

        def ours(view=view, k=k):
            return shap_heatmap(clf.predict_views, view, k, max_evals=DEFAULT_SHAP_EVALS, batch_size=64)

        def shap_defaults(view=view, k=k):
            masker = shap.maskers.Image(blur_image(view).astype(np.float32), view.shape)
            explainer = shap.Explainer(lambda x: clf.predict_views(x)[:, k], masker)
            result = explainer(view[None].astype(np.float32), silent=True)  # max_evals=500, batch_size auto
            return np.asarray(result.values[0]).reshape(view.shape).sum(axis=-1)

        t_ours, expl = timed_runs(ours, args.runs)
        t_default, default_map = timed_runs(shap_defaults, args.runs)
        t_cam, cam = timed_runs(
            lambda view=view, k=k: gradcam(clf.model, clf.preprocessing, view, k, layer="bn2", lock=clf.lock),
            max(3, args.runs),
        )
        f_ours = faithfulness(clf.predict_views, view, expl.values, k)
        f_default = faithfulness(clf.predict_views, view, default_map, k)
        f_cam = faithfulness(clf.predict_views, view, cam.values, k)
        rows.append(
            {
                "image": name,
                "class": clf.class_names[k],
                "shap_ours_s": t_ours,
                "shap_defaults_s": t_default,
                "shap_speedup": t_default / t_ours,
                "gradcam_s": t_cam,
                "faithfulness_ours_10_20": [s.score for s in f_ours],
                "faithfulness_shap_defaults_10_20": [s.score for s in f_default],
                "faithfulness_gradcam_10_20": [s.score for s in f_cam],
            }
        )
    return {"per_image": rows}


def fine_tuning(args: argparse.Namespace) -> dict:
    root = Path(os.environ.get("LUCID_SHARED_DATA", ROOT.parent / "shared" / "data")) / "bccd" / "BCCD"
    if not root.is_dir():
        return {"skipped": f"BCCD not found at {root}"}
    data = LabelledImages(split=[])
    for split, cap in (
        ("train", args.per_class),
        ("val", args.per_class // 3),
        ("test", args.per_class // 2),
    ):
        part = load_voc_crops(root, split, max_per_class=cap, seed=0)
        data.images += part.images
        data.labels += part.labels
        data.names += part.names
        data.split += [split] * len(part)
    model = load_efficientnet_lite0()
    config = FineTuneConfig(mode="head", epochs=args.epochs, vflip=True, seed=0)
    result = fine_tune(model, ImagePreprocessing.from_model(model), data, config)
    return {
        "crops": result.split_sizes,
        "image_size": 224,
        "epoch_seconds": [h["seconds"] for h in result.history],
        "val_accuracy": [h["val_accuracy"] for h in result.history],
        "test_accuracy": result.metrics["accuracy"],
        "majority_baseline_accuracy": result.metrics["majority_baseline_accuracy"],
        "per_class_recall": {c: v["recall"] for c, v in result.metrics["per_class"].items()},
        "total_seconds": result.seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--per-class", type=int, default=100, help="BCCD training crops per class")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--photos", default="chelsea,coffee", help="sample photos to explain")
    parser.add_argument("--skip-training", action="store_true", help="leave out the BCCD fine-tuning part")
    args = parser.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    results: dict = {"torch_threads": torch.get_num_threads(), "load_average_at_start": load}
    cls = classification(args)
    clf = cls.pop("_classifier")
    results["classification"] = cls
    results["explanations"] = explanations(clf, args)
    results["fine_tuning"] = {"skipped": "--skip-training"} if args.skip_training else fine_tuning(args)

    print(f"\nVision benchmark (CPU threads {results['torch_threads']}, load average {load:.1f})")
    print(f"{'what':44} {'baseline':>14} {'ours':>14} {'ratio':>8}")
    print(
        f"{'batch classification (images/s), ' + cls['precision']:44} "
        f"{cls['per_image_loop_images_per_s']:14.1f} "
        f"{cls['ours_batched_images_per_s']:14.1f} {cls['speedup']:7.2f}x"
    )
    print(
        f"{'  same batches in float32':44} {cls['per_image_loop_images_per_s']:14.1f} "
        f"{cls['ours_batched_fp32_images_per_s']:14.1f} {cls['speedup_fp32']:7.2f}x"
    )
    print(
        f"{'  top-1 agreement with the plain loop':44} {'':14} {cls['top1_agreement']:14.3f}"
        f"  (largest probability difference {cls['max_probability_difference']:.4f})"
    )
    for row in results["explanations"]["per_image"]:
        print(
            f"{'SHAP heat-map s, ' + row['image']:44} {row['shap_defaults_s']:14.2f} "
            f"{row['shap_ours_s']:14.2f} {row['shap_speedup']:7.2f}x"
        )
        fd, fo = row["faithfulness_shap_defaults_10_20"], row["faithfulness_ours_10_20"]
        print(f"{'  faithfulness 10% (top - random drop)':44} {fd[0]:14.3f} {fo[0]:14.3f}")
        print(f"{'  faithfulness 20%':44} {fd[1]:14.3f} {fo[1]:14.3f}")
        fc = row["faithfulness_gradcam_10_20"]
        print(f"{'Grad-CAM s, ' + row['image']:44} {'':14} {row['gradcam_s']:14.3f}")
        print(f"{'  Grad-CAM faithfulness 10% / 20%':44} {'':14} {fc[0]:7.3f} {fc[1]:6.3f}")
    ft = results["fine_tuning"]
    if "skipped" in ft:
        print(ft["skipped"])
    else:
        epochs = ", ".join(f"{s:.0f}" for s in ft["epoch_seconds"])
        print(f"BCCD head fine-tuning, crops {ft['crops']}: epoch seconds [{epochs}]")
        print(
            f"  test accuracy {ft['test_accuracy']:.3f} vs majority class "
            f"{ft['majority_baseline_accuracy']:.3f}; "
            f"recall {ft['per_class_recall']}"
        )
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "vision.json").write_text(json.dumps(results, indent=2, default=float))
    print(f"Wrote {out / 'vision.json'}")


if __name__ == "__main__":
    main()
