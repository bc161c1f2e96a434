"""Small Streamlit widgets shared by the pages: the error boundary, model cards, downloads."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import pandas as pd
import streamlit as st

from services.data import to_safe_csv
from services.errors import LucidError

log = logging.getLogger("lucid.pages")


@contextlib.contextmanager
def guard(action: str) -> Iterator[None]:
    """The page boundary: a service error becomes one friendly ``st.error``; nothing else leaks.

    Known errors (:class:`LucidError`) show their own message. Anything unexpected is logged
    (type only, no user data) and shown as a short apology, never as a traceback.
    """
    try:
        yield
    except LucidError as exc:
        st.error(str(exc), icon=":material/error:")
    except Exception as exc:  # noqa: BLE001 - the boundary catches everything (st.stop/st.rerun are not Exceptions)
        log.error("unexpected error while %s: %s", action, type(exc).__name__, exc_info=True)
        st.error(
            f"Something went wrong while {action}. Your data is unchanged; "
            "please check the input and try again.",
            icon=":material/error:",
        )


def model_card(card: Mapping[str, Any], *, expanded: bool = False, title: str = "Model card") -> None:
    """Render a model card: a mapping of heading -> text, number, dict or DataFrame."""
    with st.expander(title, expanded=expanded, icon=":material/badge:"):
        for heading, value in card.items():
            if isinstance(value, pd.DataFrame):
                st.markdown(f"**{heading}**")
                st.dataframe(value, hide_index=True, width="stretch")
            elif isinstance(value, Mapping):
                st.markdown(f"**{heading}**")
                st.markdown("\n".join(f"- {k}: {_fmt(v)}" for k, v in value.items()))
            else:
                st.markdown(f"**{heading}:** {_fmt(value)}")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def downloads(
    key: str,
    *,
    table: pd.DataFrame | None = None,
    table_name: str = "results.csv",
    report_html: str | None = None,
    report_name: str = "report.html",
) -> None:
    """Download buttons: a formula-safe CSV and/or a self-contained HTML report."""
    cols = st.columns(2)
    if table is not None:
        cols[0].download_button(
            "Download CSV",
            to_safe_csv(table),
            file_name=table_name,
            mime="text/csv",
            key=f"{key}_csv",
            icon=":material/download:",
        )
    if report_html is not None:
        cols[1].download_button(
            "Download HTML report",
            report_html.encode("utf-8"),
            file_name=report_name,
            mime="text/html",
            key=f"{key}_report",
            icon=":material/description:",
        )
