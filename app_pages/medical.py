"""Medical imaging: view scans with windowing and hidden patient data, classify, explain, train.

Research demo, not for clinical use.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from lucid.core.store import shared_service
from lucid.domains.medical.cards import DISCLAIMER, UNCALIBRATED_NOTE
from lucid.domains.medical.data import labelled_scans_from_zip
from lucid.domains.medical.reading import load_scan
from lucid.domains.medical.scans import Scan
from lucid.domains.medical.service import MedicalService
from lucid.domains.medical.training import ScanTrainConfig
from lucid.domains.medical.windowing import WINDOW_PRESETS, render_slice, to_png, window_options
from lucid.ui.medical_plots import heatmap_table, plain_image, probability_figure
from lucid.ui.medical_training import forget_models, remember_run, trained_view
from lucid.ui.model_admin import model_manager
from lucid.ui.plots import image_overlay
from lucid.ui.report import Report
from lucid.ui.widgets import downloads, guard, model_card, progress_bar, training_buttons

SAMPLES = {
    "CT slice (pydicom CT_small.dcm)": ("dicom", "CT_small.dcm"),
    "MR slice (pydicom MR_small.dcm)": ("dicom", "MR_small.dcm"),
    "Retina photo (scikit-image)": ("skimage", "retina"),
    "Microscopy, immunohistochemistry (scikit-image)": ("skimage", "immunohistochemistry"),
}


@st.cache_data(show_spinner=False, max_entries=8)
def _load(data: bytes, filename: str) -> Scan:
    return load_scan(data, filename)


@st.cache_data(show_spinner=False, max_entries=4)
def _sample_bytes(kind: str, name: str) -> bytes:
    if kind == "dicom":
        from pydicom.data import get_testdata_file

        return Path(get_testdata_file(name, download=False)).read_bytes()
    import skimage.data

    return to_png(getattr(skimage.data, name)())


service = shared_service(MedicalService)  # one per process and model store, for every session
st.title("Medical imaging")
st.warning(f"**{DISCLAIMER}** Nothing on this page is a diagnosis.", icon=":material/medical_information:")

view_tab, explain_tab, train_tab, models_tab = st.tabs(
    ["View & classify", "Explain", "Train your own", "Models"]
)

# ---------------------------------------------------------------------------------------------
with view_tab:
    source = st.radio("Scan", ["Upload a file", "Sample"], horizontal=True, key="medical_source")
    data, filename = None, None
    if source == "Upload a file":
        upload = st.file_uploader(
            "DICOM (.dcm or no extension), NIfTI (.nii, .nii.gz), PNG, JPEG or TIFF",
            key="medical_upload",
        )
        if upload is not None:
            data, filename = upload.getvalue(), upload.name
    else:
        choice = st.selectbox("Sample", list(SAMPLES), key="medical_sample")
        kind, name = SAMPLES[choice]
        data, filename = _sample_bytes(kind, name), name if kind == "dicom" else f"{name}.png"

    scan = None
    if data is not None:
        with guard("reading the scan"):
            scan = _load(data, filename)
    if scan is not None:
        for note in scan.warnings:
            st.info(note, icon=":material/info:")
        left, right = st.columns([3, 2])
        with right:
            axis = 0
            if scan.kind == "nifti":
                axis = st.selectbox(
                    "Slice axis", [0, 1, 2], index=2, format_func=lambda a: f"axis {a}", key="medical_axis"
                )
            count = scan.n_slices(axis)
            index = 0
            if count > 1:
                index = st.slider("Slice", 0, count - 1, count // 2, key="medical_slice")
            pixels = scan.slice(index, axis)
            options = window_options(scan, pixels) if pixels.ndim == 2 else {}
            center, width = 128.0, 256.0
            if options:
                names = [*options, "Manual"]
                preset = st.selectbox("Window", names, key="medical_window")
                if preset == "Manual":
                    lo, hi = float(np.min(pixels)), float(np.max(pixels))
                    auto_c, auto_w = options[next(iter(options))]
                    center = st.slider(
                        "Level (centre)", lo, max(hi, lo + 1), float(auto_c), key="medical_level"
                    )
                    width = st.slider(
                        "Width",
                        1.0,
                        max(hi - lo, 2.0) * 2,
                        float(min(auto_w, max(hi - lo, 2.0) * 2)),
                        key="medical_width",
                    )
                else:
                    center, width = options[preset]
                st.caption(f"Window: centre {center:g}, width {width:g} ({scan.units})")
            st.markdown("**Image details** (patient details hidden)")
            st.dataframe(
                pd.DataFrame({"field": list(scan.metadata), "value": list(scan.metadata.values())}),
                hide_index=True,
                width="stretch",
            )
            if scan.kind == "dicom":
                reveal = st.checkbox("Reveal patient-identifying fields", value=False, key="medical_reveal")
                if reveal:
                    st.warning("Identifying fields are shown on request only and are never exported.")
                    fields = scan.identifying_fields()
                    st.dataframe(
                        pd.DataFrame({"field": list(fields), "value": list(fields.values())}),
                        hide_index=True,
                        width="stretch",
                    )
        rendered = render_slice(scan, pixels, center, width)
        with left:
            st.image(rendered, caption=f"{scan.modality} slice {index}", width="stretch")
            st.download_button(
                "Download windowed image (PNG, no metadata)",
                to_png(rendered),
                file_name="windowed_slice.png",
                mime="image/png",
                key="medical_png",
            )
        st.session_state["medical_image"] = rendered
        st.session_state["medical_image_id"] = (hash(data), axis, index, center, width)

        st.subheader("Classify")
        model_name = st.selectbox("Model", service.model_names(), key="medical_model")
        if st.button("Classify this slice", key="medical_classify", type="primary"):
            with guard("classifying the slice"), st.spinner("Running the model"):
                prediction = service.classify(rendered, model_name)
                st.session_state["medical_prediction"] = {
                    "model": model_name,
                    "image_id": st.session_state["medical_image_id"],
                    "prediction": prediction,
                }
                st.session_state.pop("medical_explained", None)
        result = st.session_state.get("medical_prediction")
        if result and result["image_id"] == st.session_state["medical_image_id"]:
            prediction = result["prediction"]
            st.metric("Most likely class", prediction.label, f"{prediction.probabilities.max():.1%}")
            st.plotly_chart(probability_figure(prediction.probabilities), key="medical_probs_chart")
            st.caption(
                ("Calibrated on held-out data (temperature scaling). " if prediction.calibrated else "")
                + UNCALIBRATED_NOTE
                + f" {DISCLAIMER}"
            )
            table = prediction.probabilities.rename_axis("class").reset_index()
            report = Report(
                "Medical imaging: classification", subtitle=f"Model: {result['model']}. {DISCLAIMER}"
            )
            report.add(
                "Image the model saw", figure=image_overlay(plain_image(prediction.model_image), opacity=0.0)
            )
            report.add("Class probabilities", text=UNCALIBRATED_NOTE, table=table)
            downloads(
                "medical_prediction",
                table=table,
                table_name="probabilities.csv",
                report_html=report.to_html(),
                report_name="classification_report.html",
            )
    elif data is None:
        st.info("Upload a scan or choose a sample to start.")


# ---------------------------------------------------------------------------------------------
with explain_tab:
    result = st.session_state.get("medical_prediction")
    if not result:
        st.info("Classify a slice first (View & classify tab).")
    else:
        prediction = result["prediction"]
        classes = list(prediction.probabilities.index)
        target = st.selectbox(
            "Explain class", classes, index=prediction.class_index, key="medical_explain_class"
        )
        evals = st.select_slider("SHAP evaluations", [50, 100, 200, 400], value=100, key="medical_evals")
        st.caption("More evaluations give a finer SHAP map and take longer; Grad-CAM is instant.")
        if st.button("Explain", key="medical_explain", type="primary"):
            with guard("explaining the prediction"), st.status("Explaining", expanded=False) as status:
                k = classes.index(target)
                status.update(label="Grad-CAM")
                cam = service.gradcam(prediction.model_image, result["model"], k)
                status.update(label="SHAP heat-map")
                heat = service.shap_map(prediction.model_image, result["model"], k, max_evals=int(evals))
                status.update(label="Faithfulness")
                st.session_state["medical_explained"] = {
                    "class": target,
                    "cam": cam,
                    "shap": heat,
                    "cam_faith": service.faithfulness(prediction.model_image, result["model"], cam.values, k),
                    "shap_faith": service.faithfulness(
                        prediction.model_image, result["model"], heat.values, k
                    ),
                }
                status.update(label="Done", state="complete")
        explained = st.session_state.get("medical_explained")
        if explained:
            opacity = st.slider("Heat-map opacity", 0.0, 1.0, 0.5, key="medical_opacity")
            cols = st.columns(2)
            cam_fig = image_overlay(explained["cam"], opacity=opacity, signed=False, title="Grad-CAM")
            shap_fig = image_overlay(
                explained["shap"], opacity=opacity, title="SHAP (red raises, blue lowers)"
            )
            cols[0].plotly_chart(cam_fig, key="medical_cam_chart")
            cols[1].plotly_chart(shap_fig, key="medical_shap_chart")
            faith = pd.concat(
                [
                    explained["cam_faith"].assign(map="Grad-CAM"),
                    explained["shap_faith"].assign(map="SHAP"),
                ],
                ignore_index=True,
            )[
                [
                    "map",
                    "fraction",
                    "probability",
                    "probability_top_blurred",
                    "probability_random_blurred",
                    "faithfulness",
                ]
            ]
            st.markdown(
                f"**Faithfulness** for class *{explained['class']}* (blurring the top "
                f"{faith['fraction'].iloc[0]:.0%} of the image by attribution): Grad-CAM "
                f"{explained['cam_faith']['faithfulness'].iloc[0]:+.3f}, SHAP "
                f"{explained['shap_faith']['faithfulness'].iloc[0]:+.3f}. It is the probability lost when "
                "the most important regions are blurred, minus the loss when random regions of the same "
                "size are blurred; above 0 means the map points at what the model uses."
            )
            st.dataframe(faith.round(4), hide_index=True, width="stretch")
            st.caption(
                f"SHAP values add up to the class probability minus {explained['shap'].base_values:.3f} "
                f"(the probability with the whole image hidden). {UNCALIBRATED_NOTE} {DISCLAIMER}"
            )
            shap_table = heatmap_table(explained["shap"], explained["cam"])
            report = Report(
                "Medical imaging: explanation", subtitle=f"Model: {result['model']}. {DISCLAIMER}"
            )
            report.add(
                "Class probabilities", text=UNCALIBRATED_NOTE, table=prediction.probabilities.reset_index()
            )
            report.add("Where the model looked", figure=[cam_fig, shap_fig])
            report.add("Faithfulness (blurring test)", table=faith.round(4))
            downloads(
                "medical_explanation",
                table=shap_table,
                table_name="heatmaps.csv",
                report_html=report.to_html(),
                report_name="explanation_report.html",
            )

# ---------------------------------------------------------------------------------------------
with train_tab:
    st.markdown(
        "Upload a **zip of class folders** (e.g. `tumour/001.dcm`, `normal/002.dcm`; DICOM or PNG). "
        "Images are windowed as in the viewer, an ImageNet-pretrained EfficientNet-Lite0 is fine-tuned, "
        "and the result is measured on a held-out test split. When the DICOM files carry patient IDs, "
        "each patient stays in one split. Click Stop to cancel a run; nothing is saved then. " + DISCLAIMER
    )
    archive = st.file_uploader("Labelled scans (zip)", type=["zip"], key="medical_train_zip")
    c1, c2, c3, c4 = st.columns(4)
    new_name = c1.text_input("Save as", value="my-scans-model", key="medical_train_name")
    epochs = c2.number_input("Epochs", 1, 30, 3, key="medical_train_epochs")
    size = c3.select_slider("Image size", [64, 96, 128, 160, 224], value=224, key="medical_train_size")
    window = c4.selectbox(
        "Window",
        ["file", "auto", *WINDOW_PRESETS],
        key="medical_train_window",
    )
    mode = st.radio(
        "What to train",
        ["full", "head"],
        format_func=lambda m: "every layer (better, slower)" if m == "full" else "only a new head (fast)",
        horizontal=True,
        key="medical_train_mode",
    )
    threshold = st.slider(
        "Decision threshold (sensitivity / specificity)", 0.05, 0.95, 0.5, key="medical_threshold"
    )
    controls = training_buttons(
        "medical_train_run",
        train_key="medical_train",
        stop_key="medical_train_stop",
        disabled=archive is None,
    )
    if controls.start and archive is not None:
        run_done = False
        with guard("training the model"), st.status("Training", expanded=True) as status:
            labelled = labelled_scans_from_zip(archive.getvalue(), window=window)
            st.write(
                f"{len(labelled.data)} images, classes: {labelled.counts()}, split by {labelled.group_kind}."
            )
            on_progress = progress_bar()[1]  # the bar stays, showing the held-out accuracy at the end
            config = ScanTrainConfig(
                epochs=int(epochs), image_size=int(size), threshold=float(threshold), mode=mode
            )
            _, trained = controls.call(
                service.train,
                labelled,
                new_name,
                config,
                progress=on_progress,
            )
            remember_run(trained)
            status.update(
                label=f"Saved as {trained.name}"
                if trained.saved
                else "Trained, not saved (see the check below)",
                state="complete",
            )
            run_done = trained.saved
        if run_done:
            st.rerun()  # the model picker above was drawn before the model existed
    trained_view(service)

# ---------------------------------------------------------------------------------------------
with models_tab:
    st.caption(DISCLAIMER)
    st.subheader("Your saved models")
    model_manager("medical", service, on_change=forget_models)
    st.subheader("Model cards")
    for name in service.model_names():
        with guard("showing the model card"):
            model_card(service.card(name), title=f"Model card: {name}")
