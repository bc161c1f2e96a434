"""Lucid: explainable AI dashboards. Run with `streamlit run app.py` (or `make run`)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import streamlit as st  # noqa: E402

from lucid.core.auth import sign_in_required  # noqa: E402
from lucid.core.logs import configure_logging  # noqa: E402
from lucid.ui.catalogue import HOME, available_pages  # noqa: E402

configure_logging()
st.set_page_config(page_title="Lucid", page_icon=":material/insights:", layout="wide")


def _secrets():
    try:
        return st.secrets.to_dict() if len(st.secrets) else None
    except FileNotFoundError:
        return None
    except Exception:  # noqa: BLE001 - a malformed secrets file means no sign-in configured
        return None


# Optional sign-in with Streamlit's built-in OpenID Connect, on only when [auth] is configured.
if sign_in_required(_secrets()):
    if not st.user.get("is_logged_in", False):
        st.title("Lucid")
        st.write("Please sign in to use Lucid.")
        st.button("Sign in", on_click=st.login, type="primary", key="app_sign_in")
        st.stop()
    with st.sidebar:
        st.caption(f"Signed in as {st.user.get('name') or st.user.get('email') or 'user'}")
        st.button("Sign out", on_click=st.logout, key="app_sign_out")

pages = [st.Page(HOME.path, title=HOME.title, icon=HOME.icon, default=True)]
pages += [st.Page(p.path, title=p.title, icon=p.icon) for p in available_pages()]
st.navigation(pages).run()
