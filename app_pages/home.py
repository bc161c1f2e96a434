"""Home: what Lucid is, what each page does, and what this installation runs on."""

import pandas as pd
import streamlit as st

from lucid.core.device import describe_device
from lucid.core.versions import library_versions
from lucid.ui.catalogue import available_pages


@st.cache_resource(show_spinner=False)
def _device_info():
    return describe_device()


st.title("Lucid")
st.markdown(
    "**Explainable AI for business data.** Upload your own data or use the built-in demo data, get "
    "predictions from deep-learning and gradient-boosted models, and see *why* each prediction was "
    "made, with SHAP explanations you can download and show to stakeholders. Every model has a model "
    "card saying where it came from and how well it did on data it had not seen. You can also train "
    "a model on your own labelled data and keep it under a name."
)

pages = available_pages()
st.subheader("Start here")
st.markdown(
    "1. **Pick the page for your question** below: reviews, photos, scans, loan applicants or "
    "customers' next purchases.\n"
    "2. **Look at the demo first**: every page opens with built-in demo data, scored and explained, so "
    "you see what you will get before you upload anything.\n"
    "3. **Upload your own file** (CSV, Excel or Parquet tables; images or a zip of them) for predictions "
    "and explanations you can download, or **train a model on your labelled data**: it is checked "
    "against a simple baseline on data it has not seen before it is saved under your name."
)
if pages:
    first = pages[0]
    st.page_link(first.path, label=f"Try it now: {first.title}", icon=first.icon)

if pages:
    st.subheader("Pages")
    cols = st.columns(2)
    for i, page in enumerate(pages):
        with cols[i % 2].container(border=True):
            st.page_link(page.path, label=page.title, icon=page.icon)
            st.caption(f"For: {page.audience}")
            st.write(page.summary)
else:
    st.info("No domain pages are installed in this build yet.")

info = _device_info()
with st.expander("This installation: compute device and library versions", icon=":material/memory:"):
    left, right = st.columns(2)
    with left:
        label = "GPU" if info.type == "cuda" else ("Apple GPU" if info.type == "mps" else "CPU")
        st.metric("Compute device", label)
        st.markdown(f"**Device:** {info.name}")
        if info.memory_gb:
            st.markdown(f"**GPU memory:** {info.memory_gb} GB")
        st.markdown(f"**Precision:** {info.precision} for inference and training (weights kept in float32)")
        st.caption(
            "Set the environment variable LUCID_DEVICE to cpu, cuda or mps to force a device, and "
            "LUCID_PRECISION to fp32, bf16 or fp16 to force a precision."
        )
    with right:
        versions = library_versions()
        st.markdown("**Key libraries**")
        st.dataframe(
            pd.DataFrame({"library": list(versions), "version": list(versions.values())}),
            hide_index=True,
            width="stretch",
        )

st.caption(
    "Explanations are computed with SHAP (SHapley Additive exPlanations): each feature, word or image "
    "region gets a share of the prediction, and the shares add up to the model's output."
)
