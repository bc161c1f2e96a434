"""Helpers for the page tests."""

from __future__ import annotations

import pytest


def _press_during_run(at, key: str, *, release: str) -> None:
    """Do, from inside the running script, what the browser does when the user clicks button ``key``
    while the script runs: send the page's widget states with that button pressed (and ``release``,
    the button that started the run, no longer pressed), which makes Streamlit request a rerun."""
    from streamlit.runtime.scriptrunner import RerunData, get_script_run_ctx

    at.button(key=release).set_value(False)
    pressed = at.button(key=key).click()
    ctx = get_script_run_ctx()
    ctx.script_requests.request_rerun(
        RerunData(widget_states=pressed.root.get_widget_states(), page_script_hash=ctx.page_script_hash)
    )


@pytest.fixture
def press_during_run():
    """``press(at, key, release=start_key)``: click a button of ``at`` while its script is running
    (call it from code the script runs, e.g. a patched training loop)."""
    return _press_during_run


@pytest.fixture
def downloads_captured(monkeypatch):
    """File name -> bytes of every download button the app renders (AppTest keeps no media files)."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    captured: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def record(self, path_or_data, mimetype, kind, filename=None):
        if filename and isinstance(path_or_data, bytes):
            captured[filename] = path_or_data
        return original(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", record)
    return captured
