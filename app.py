"""Lucid: explainable AI dashboards. Run with `streamlit run app.py` (or `make run`)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import streamlit as st  # noqa: E402

from services.logs import configure_logging  # noqa: E402
from ui.catalogue import HOME, available_pages  # noqa: E402

configure_logging()
st.set_page_config(page_title="Lucid", page_icon=":material/insights:", layout="wide")

pages = [st.Page(HOME.path, title=HOME.title, icon=HOME.icon, default=True)]
pages += [st.Page(p.path, title=p.title, icon=p.icon) for p in available_pages()]
st.navigation(pages).run()
