"""Managing saved models and judging a newly trained one, the same way on every page.

- :func:`quality_gate_view`: the held-out comparison of a new model with its baseline and chance,
  in words, with its caveats, and (when the model was not saved because it did not pass) a
  "Save anyway" button;
- :func:`model_manager`: the saved models of a domain (date, data, headline metric) with rename and
  delete.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from lucid.core.quality import QualityGate
from lucid.domains.base import ModelService
from lucid.ui.widgets import guard


def quality_gate_view(
    key: str, gate: QualityGate | None, *, saved: bool, save: Callable[[], Any] | None = None
) -> bool:
    """Show the verdict of a training run; returns True when the model is (now) saved.

    Args:
        key: widget-key prefix of the page's training flow.
        gate: the held-out comparison (``None`` when the domain could not measure one).
        saved: whether the service saved the model (it does when the model passed).
        save: saves the trained model on the user's explicit choice (shown only when not saved).
    """
    if gate is None:
        return saved
    if gate.passed:
        st.success(gate.verdict(), icon=":material/verified:")
    else:
        st.warning(gate.verdict(), icon=":material/warning:")
    for caveat in gate.caveats():
        st.caption(caveat)
    if saved or save is None:
        return saved
    done_key = f"{key}_saved_anyway"  # holds the gate of the run saved on request, not a flag for every run
    if st.session_state.get(done_key) == gate:
        st.info("Saved on your request, although it did not pass the check above.")
        return True
    if st.button("Save anyway", key=f"{key}_save_anyway", icon=":material/save:"):
        with guard("saving the model"):
            save()
            st.session_state[done_key] = gate
            st.rerun()
    return False


def model_manager(
    key: str, service: ModelService[Any], *, on_change: Callable[[], None] | None = None
) -> None:
    """The saved models of a domain, newest first, with rename and delete (built-in ones are listed
    by the page itself and cannot be changed)."""
    table = service.saved_models_table()
    if table.empty:
        st.caption("No saved models yet: models you train on this page are listed here.")
        return
    st.dataframe(table, hide_index=True, width="stretch")
    names = list(table["Name"])
    chosen = st.selectbox("Model", names, key=f"{key}_manage_model")
    new_name = st.text_input(
        "New name", key=f"{key}_manage_new_name", placeholder="letters, digits, - _ . space"
    )
    rename_col, delete_col, _ = st.columns([1, 1, 3])
    if rename_col.button(
        "Rename", key=f"{key}_manage_rename", disabled=not new_name.strip(), width="stretch"
    ):
        with guard("renaming the model"):
            service.rename(chosen, new_name)
            if on_change:
                on_change()
            st.rerun()
    confirm_key = f"{key}_manage_confirm"
    if delete_col.button("Delete", key=f"{key}_manage_delete", width="stretch"):
        st.session_state[confirm_key] = chosen
    if st.session_state.get(confirm_key) == chosen:
        st.warning(f"Delete '{chosen}' for everyone using this model store? This cannot be undone.")
        if st.button("Yes, delete it", key=f"{key}_manage_delete_yes", type="primary"):
            with guard("deleting the model"):
                service.delete(chosen)
                st.session_state.pop(confirm_key, None)
                if on_change:
                    on_change()
                st.rerun()
