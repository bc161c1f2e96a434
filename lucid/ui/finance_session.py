"""What the Credit risk page keeps per session and per upload: parsed files, the loaded model (built
with a progress bar on first use) and the scored batch."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import streamlit as st

from lucid.core.store import shared_service
from lucid.domains.finance.bundle import CreditBundle
from lucid.domains.finance.service import FinanceService, ScoreResult
from lucid.ui.widgets import progress_bar


@st.cache_data(show_spinner=False, max_entries=4)
def read_upload(data: bytes, filename: str) -> pd.DataFrame:
    """Parse an uploaded table once per file."""
    return shared_service(FinanceService).read_applicants(data, filename)


def digest(data: bytes) -> str:
    """A short fingerprint of an upload, to know when the scored batch must be recomputed."""
    return hashlib.sha256(data).hexdigest()[:16]


def load_model(service: FinanceService, name: str) -> CreditBundle:
    """The model ``name``; a default not built yet is built under a status box with a progress bar."""
    if service.is_built(name):
        return service.load(name)
    with st.status(f"Building the default model '{name}' (first use only)...", expanded=True) as status:
        _, report = progress_bar()
        bundle = service.load(name, progress=report)
        status.update(label=f"Model '{name}' built and saved.", state="complete", expanded=False)
    return bundle


def scored_in_session(
    service: FinanceService, bundle: CreditBundle, df: pd.DataFrame, source: str
) -> ScoreResult:
    """The scored batch of this session, recomputed only when the model or the applicants change
    (the export and the global explanation of an older batch are dropped with it)."""
    signature = (bundle.name, source)
    if st.session_state.get("finance_scored_sig") != signature:
        st.session_state["finance_scored"] = service.score(bundle, df)
        st.session_state["finance_scored_sig"] = signature
        for key in ("finance_export", "finance_global"):
            st.session_state.pop(key, None)
    result: ScoreResult = st.session_state["finance_scored"]
    return result


def decided(scored: ScoreResult, threshold: float) -> pd.DataFrame:
    """The scored table with the decision at the page's current threshold (no re-scoring)."""
    table = scored.table.copy()
    table["decision"] = np.where(scored.pd >= threshold, "reject", "approve")
    return table
