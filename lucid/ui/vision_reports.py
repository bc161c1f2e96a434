"""The Vision page's HTML reports: one image's explanation, and a batch of classified images."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lucid.domains.vision.explain import ImageExplanation
from lucid.ui.plots import image_overlay
from lucid.ui.report import Report


def explanation_report(model: str, image_name: str, result: ImageExplanation, opacity: float) -> str:
    """The Explain tab's report: the prediction, both heat-maps and their faithfulness scores."""
    report = Report("Image explanation", subtitle=f"Model: {model} · image: {image_name}")
    top = pd.DataFrame([{"class": c, "probability": p} for _, c, p in result.top5])
    report.add(
        "Prediction",
        text=f"Explained class: {result.class_name} (probability {result.probability:.3f}).",
        table=top,
    )
    report.add(
        "Where the model looked",
        text=(
            "Left: SHAP values (red regions raised the class probability, blue lowered it; they add up "
            "to the probability minus that of the fully blurred image). Right: Grad-CAM on the last "
            "convolutional stage."
        ),
        figure=[
            image_overlay(result.shap, opacity=opacity, title="SHAP"),
            image_overlay(result.gradcam, opacity=opacity, title="Grad-CAM", signed=False),
        ],
    )
    report.add(
        "Faithfulness",
        text="How far the probability falls when the top-attributed regions are blurred, against random.",
        table=result.faithfulness_table().round(4),
    )
    return report.to_html()


def batch_report(model: str, table: pd.DataFrame, images: list[tuple[str, np.ndarray]]) -> str:
    """The Batch tab's report: class counts, a gallery of thumbnails with their top class, all top 5s."""
    report = Report("Image classification results", subtitle=f"Model: {model} · {len(table)} images")
    counts = table["top1"].value_counts().rename_axis("predicted class").reset_index(name="images")
    report.add("Predicted classes", table=counts)
    report.add_gallery(
        "Gallery",
        [
            (arr, name, f"{row['top1']} ({row['probability']:.1%})")
            for (name, arr), (_, row) in zip(images, table.iterrows(), strict=True)
        ],
        text="Each image with the class the model found most likely and its probability.",
    )
    report.add("All predictions (top 5 each)", table=table.round(4))
    return report.to_html()


def training_report(
    name: str, split: object, metrics: dict, per_class: pd.DataFrame, figures: list, verdict: str = ""
) -> str:
    """The Train tab's report: held-out test results against the majority-class baseline."""
    report = Report(f"Fine-tuned image classifier '{name}'", subtitle=f"Images: {split}")
    report.add(
        "Test results",
        text=verdict
        or (
            f"Test accuracy {metrics['accuracy']:.3f}, against "
            f"{metrics['majority_baseline_accuracy']:.3f} "
            f"for always answering '{metrics['majority_class']}'."
        ),
        table=per_class.round(4),
        figure=figures,
    )
    return report.to_html()
