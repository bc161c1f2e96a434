"""Image classification: classify photos, see which regions drove each prediction, train your own model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from lucid.core.errors import InvalidInputError
from lucid.core.store import shared_service
from lucid.domains import DOMAINS
from lucid.domains.vision.batch import batch_frame
from lucid.domains.vision.data import SAMPLE_PHOTOS, images_digest
from lucid.domains.vision.explain import DEFAULT_SHAP_EVALS
from lucid.domains.vision.service import DEFAULT_MODEL, VisionService
from lucid.imaging.datasets import labelled_images_from_zip
from lucid.imaging.training import FineTuneConfig
from lucid.ui.plots import image_overlay
from lucid.ui.vision_cache import (
    batch_report_html,
    classify_images,
    decode_uploads,
    explain_image,
    load_samples,
    sample_files,
)
from lucid.ui.vision_plots import top_classes_bar
from lucid.ui.vision_reports import explanation_report
from lucid.ui.vision_training import keep_trained, show_trained, your_models
from lucid.ui.widgets import batch_export, downloads, guard, model_card, progress_bar, training_buttons

IMAGE_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif", "zip"]
SHAP_BUDGETS = [50, 100, 200, 300, 500]

service = shared_service(VisionService)  # one per process and model store, for every session

st.title("Image classification")
st.caption(
    "Classify photos into 1,000 everyday categories, see which regions of each picture drove the prediction, "
    "and adapt the model to your own categories from a few hundred labelled images."
)

model = DEFAULT_MODEL
with guard("listing the models"):
    models = service.model_names()
    model = st.selectbox(
        "Model",
        models,
        key="vision_model",
        help="The built-in ImageNet model, or one you fine-tuned on the 'Train your own' tab.",
    )
    model_card(service.card(model))

# ------------------------------------------------------------------ images in
source = st.radio("Images", ["Sample photos", "Upload your own"], key="vision_source", horizontal=True)
items: list[tuple[str, np.ndarray]] = []
files: tuple[tuple[str, bytes], ...] = ()  # the same images as files, for the batch job
if source == "Sample photos":
    chosen = st.multiselect(
        "Sample photos (bundled with scikit-image, BSD-3-Clause)",
        list(SAMPLE_PHOTOS),
        default=["chelsea", "coffee"],
        format_func=lambda n: f"{n}: {SAMPLE_PHOTOS[n]}",
        key="vision_samples",
    )
    if chosen:
        with guard("loading the sample photos"):
            items = load_samples(tuple(chosen))
            files = sample_files(tuple(chosen))
else:
    uploads = st.file_uploader(
        "Images (JPEG, PNG, WebP, BMP, TIFF, GIF) or a zip of images",
        type=IMAGE_TYPES,
        accept_multiple_files=True,
        key="vision_upload",
    )
    if uploads:
        with guard("reading the images"):
            files = tuple((f.name, f.getvalue()) for f in uploads)
            decoded = decode_uploads(files)
            items = [(n, np.asarray(im)) for n, im in zip(decoded.names, decoded.images, strict=True)]
            if decoded.problems:
                st.warning(f"{len(decoded.problems)} file(s) were skipped:", icon=":material/warning:")
                st.dataframe(pd.DataFrame({"skipped": decoded.problems}), hide_index=True, width="stretch")

predictions: pd.DataFrame | None = None
items_digest = ""
if items:
    with guard("classifying the images"):
        items_digest = images_digest(items)
        with st.spinner(f"Classifying {len(items)} image(s)..."):
            predictions = classify_images(service, model, service.stamp(model), items_digest, items)
        st.session_state["vision_predictions"] = predictions

tab_classify, tab_explain, tab_batch, tab_train = st.tabs(["Classify", "Explain", "Batch", "Train your own"])

# ------------------------------------------------------------------ classify
with tab_classify:
    if predictions is None:
        st.info("Pick sample photos or upload images above.")
    else:
        names = [n for n, _ in items]
        pick = st.selectbox("Image", names, key="vision_pick")
        i = names.index(pick)
        row = predictions.iloc[i]
        top = [(0, row[f"class_{j}"], float(row[f"prob_{j}"])) for j in range(1, 6) if f"class_{j}" in row]
        left, right = st.columns([1, 1])
        left.image(items[i][1], caption=pick, width="stretch")
        with right:
            st.metric(
                "Top class", str(row["top1"]), f"{row['probability']:.1%} probability", delta_color="off"
            )
            st.plotly_chart(top_classes_bar(top, title="Top 5"), width="stretch", key="vision_top5_chart")

# ------------------------------------------------------------------ explain
with tab_explain:
    if predictions is None:
        st.info("Pick sample photos or upload images above.")
    else:
        names = [n for n, _ in items]
        pick = st.selectbox("Image to explain", names, key="vision_explain_image")
        i = names.index(pick)
        with guard("listing the classes"):
            class_names = service.class_names(model)
            row = predictions.iloc[i]
            top_names = [row[f"class_{j}"] for j in range(1, 6) if f"class_{j}" in row]
            order = [class_names.index(c) for c in top_names]
            order += [k for k in range(len(class_names)) if k not in order]
            c1, c2, c3 = st.columns([2, 1, 1])
            choice = c1.selectbox(
                "Class to explain (the top 5 first, then every other class)",
                [-1, *order],
                format_func=lambda k: f"the top class ({top_names[0]})" if k < 0 else class_names[k],
                key="vision_class",
            )
            class_index = order[0] if choice < 0 else choice
            max_evals = c2.select_slider(
                "SHAP budget (model calls)", SHAP_BUDGETS, value=DEFAULT_SHAP_EVALS, key="vision_evals"
            )
            opacity = c3.slider("Heat-map opacity", 0.0, 1.0, 0.5, 0.05, key="vision_opacity")
        if st.button("Explain", key="vision_explain_button", type="primary", icon=":material/visibility:"):
            with guard("explaining the image"):
                with st.spinner("Computing the SHAP and Grad-CAM heat-maps..."):
                    result = explain_image(
                        service,
                        model,
                        service.stamp(model),
                        images_digest([items[i]]),
                        int(class_index),
                        int(max_evals),
                        items[i][1],
                    )
                st.session_state["vision_explanation"] = {"model": model, "image": pick, "result": result}
        shown = st.session_state.get("vision_explanation")
        if shown is not None:
            result = shown["result"]
            st.markdown(
                f"**{shown['image']}**: explaining **{result.class_name}** "
                f"(probability {result.probability:.3f}, model {shown['model']})"
            )
            left, right = st.columns(2)
            with left:
                st.plotly_chart(
                    image_overlay(result.shap, opacity=opacity, title="SHAP (red raises, blue lowers)"),
                    width="stretch",
                    key="vision_shap_chart",
                )
                st.caption(
                    f"Base value (fully blurred image) {float(result.shap.base_values):.3f} + sum of SHAP "
                    f"values {float(np.sum(result.shap.values)):+.3f} = {result.probability:.3f}. "
                    f"Computed in {result.shap_seconds:.1f} s."
                )
            with right:
                st.plotly_chart(
                    image_overlay(
                        result.gradcam, opacity=opacity, title="Grad-CAM (last conv stage)", signed=False
                    ),
                    width="stretch",
                    key="vision_cam_chart",
                )
                st.caption(f"Computed in {result.gradcam_seconds:.2f} s.")
            st.subheader("Faithfulness")
            st.caption(
                "The class probability after blurring the most-attributed 10% / 20% of the image, against "
                "blurring random regions of the same size (mean of 8 draws). A faithful map makes the "
                "probability fall more: 'faithfulness' is the extra fall."
            )
            faith = result.faithfulness_table()
            st.dataframe(faith.round(4), hide_index=True, width="stretch", key="vision_faith_table")
            downloads(
                "vision_explain_dl",
                table=pd.concat(
                    [faith, result.region_table().assign(method="SHAP value per region (7 x 7 grid)")],
                    ignore_index=True,
                ),
                table_name="explanation.csv",
                report_html=explanation_report(shown["model"], shown["image"], result, opacity),
                report_name="explanation.html",
            )

# ------------------------------------------------------------------ batch
with tab_batch:
    if predictions is None:
        st.info("Pick sample photos or upload images above.")
    else:
        st.dataframe(
            predictions.round(4),
            hide_index=True,
            width="stretch",
            column_config={
                "probability": st.column_config.ProgressColumn("probability", min_value=0, max_value=1)
            },
            key="vision_batch_table",
        )
        cols = st.columns(4)
        for k, ((name, arr), (_, row)) in enumerate(zip(items, predictions.iterrows(), strict=True)):
            cols[k % 4].image(
                arr, caption=f"{name}: {row['top1']} ({row['probability']:.0%})", width="stretch"
            )
        downloads(
            "vision_batch_dl",
            table=predictions,
            table_name="predictions.csv",
            report_html=batch_report_html(model, service.stamp(model), items_digest, predictions, items),
            report_name="predictions.html",
        )
        with st.expander("Batch job: every image with its explanation summary", icon=":material/dns:"):
            st.caption(
                "The same job as `lucid vision score --explain`: every file above, in order, "
                "with its top 5 classes and (optionally) the summary of its SHAP and Grad-CAM maps; files "
                "that are not usable images are left out of the table and counted."
            )
            with guard("preparing the batch job"):
                frame = batch_frame(files)
                budget = st.select_slider(
                    "SHAP budget per image (model calls)",
                    SHAP_BUDGETS,
                    value=DEFAULT_SHAP_EVALS,
                    key="vision_batch_evals",
                )
                export = batch_export(
                    "vision_batch",
                    DOMAINS["vision"],
                    frame,
                    model=model,
                    options={"top_k": 5, "max_evals": int(budget)},
                    explain_label="Add each image's SHAP and Grad-CAM summary (seconds per image on a CPU)",
                    file_name="predictions_export.csv",
                )
                if export is not None and len(frame) > export.rows:
                    st.caption(
                        f"{export.rows:,} image(s) in the export; {len(frame) - export.rows:,} file(s) "
                        "skipped (not usable images, as listed above)."
                    )

# ------------------------------------------------------------------ train
with tab_train:
    st.markdown(
        "Upload a **zip of class folders** (`cats/a.jpg`, `dogs/b.jpg`, ...; folders named `train`, `val` "
        "or `test` above them keep your own split) or a zip holding the images and a **CSV** with `file` "
        "and `label` columns. The images are split stratified into training, validation and test; the test "
        "images are used only for the final scores. Click Stop to cancel a run; nothing is saved then."
    )
    train_zip = st.file_uploader("Labelled images (zip)", type=["zip"], key="vision_train_upload")
    c1, c2, c3 = st.columns(3)
    mode = c1.radio(
        "What to train",
        ["head", "full"],
        format_func=lambda m: (
            "the new classifier head only (fast)" if m == "head" else "every layer (slower)"
        ),
        key="vision_train_mode",
    )
    epochs = c2.slider("Epochs", 1, 20, 5, key="vision_epochs")
    size = c3.select_slider("Image size (px)", [96, 128, 160, 192, 224], value=224, key="vision_image_size")
    c4, c5 = st.columns(2)
    vflip = c4.checkbox("Also flip vertically (microscopy, aerial photos)", key="vision_vflip")
    augment = c5.checkbox("Augment (random crops, flips, colour)", value=True, key="vision_augment")
    train_name = st.text_input("Save as", value="my-images", key="vision_train_name")
    data = None
    if train_zip is not None:
        with guard("reading the training images"):
            data = labelled_images_from_zip(train_zip.getvalue())
            counts = pd.DataFrame(list(data.class_counts().items()), columns=["class", "images"])
            st.dataframe(counts, hide_index=True, key="vision_train_counts")
            if data.skipped:
                st.warning(f"{len(data.skipped)} file(s) were skipped.", icon=":material/warning:")
                st.dataframe(pd.DataFrame({"skipped": data.skipped}), hide_index=True, width="stretch")
    controls = training_buttons(
        "vision_train", train_key="vision_train_button", stop_key="vision_train_stop", disabled=data is None
    )
    if controls.start and data is not None:
        with guard("training the model"):
            if not train_name.strip():
                raise InvalidInputError("Give the model a name.")
            with st.status(f"Fine-tuning on {len(data)} images...", expanded=True) as status:
                _, move_bar = progress_bar()
                seen_epochs: list[str] = []

                def report_progress(fraction: float, message: str) -> None:
                    move_bar(fraction, message)
                    if "validation accuracy" in message and message not in seen_epochs:
                        seen_epochs.append(message)
                        st.write(message)

                config = FineTuneConfig(
                    mode=mode, epochs=int(epochs), image_size=int(size), vflip=vflip, augment=augment
                )
                trained = controls.call(service.train, data, train_name, config, progress=report_progress)
                status.update(
                    label=(
                        f"Saved as '{trained.name}'"
                        if trained.saved
                        else f"Trained '{trained.name}'; not saved: it did not pass the check below"
                    ),
                    state="complete" if trained.saved else "error",
                )
            keep_trained(trained)
            st.rerun()  # so the model list at the top includes the new model
    show_trained(service)
    your_models(service)
