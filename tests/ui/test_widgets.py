"""The Train / Stop helper and the error boundary, on a small script through AppTest (no model)."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from lucid.ui.widgets import TRAINING_INTERRUPTED, TRAINING_STOPPED, TrainingRun


def _training_script(steps: int = 5) -> None:
    """A page with a stoppable 'training' loop that records the steps it took and what it 'saved'."""
    import streamlit as st

    from lucid.core.errors import TrainingCancelled
    from lucid.ui.widgets import guard, training_buttons

    def train(n: int, *, should_stop) -> str:
        st.session_state.setdefault("steps", 0)
        for _ in range(n):
            if should_stop():
                raise TrainingCancelled("Training was cancelled; nothing was saved.")
            st.session_state["steps"] += 1
        return "model"

    st.slider("Epochs", 1, 5, 1, key="epochs")
    controls = training_buttons("demo_train")
    if controls.start:
        with guard("training the model"):
            st.session_state["saved"] = controls.call(train, steps)
            st.success("Saved")


def _app() -> AppTest:
    return AppTest.from_function(_training_script, default_timeout=30).run()


def _warnings(at) -> list[str]:
    return [w.value for w in at.warning]


def test_train_runs_and_saves():
    at = _app()
    assert not at.exception and not _warnings(at)
    at.button(key="demo_train_go").click().run()
    assert not at.exception and not at.error and not _warnings(at)
    assert at.session_state["saved"] == "model" and at.session_state["steps"] == 5
    assert at.session_state["demo_train"] == TrainingRun()


def test_a_requested_stop_cancels_at_the_first_step_and_the_page_still_works():
    at = _app()
    at.session_state["demo_train"] = TrainingRun(stop_requested=True)
    at.button(key="demo_train_go").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert _warnings(at) == [TRAINING_STOPPED]
    assert "saved" not in at.session_state and at.session_state["steps"] == 0
    assert at.session_state["demo_train"] == TrainingRun()
    at.button(key="demo_train_go").click().run()  # the next run trains normally
    assert not at.exception and not _warnings(at) and at.session_state["saved"] == "model"


def test_after_a_run_ended_by_stop_the_next_run_says_so_once():
    at = _app()
    # What an interrupted run leaves behind: the run is still marked as going.
    at.session_state["demo_train"] = TrainingRun(running=True)
    at.button(key="demo_train_stop").click().run()
    assert not at.exception and _warnings(at) == [TRAINING_STOPPED]
    assert "saved" not in at.session_state
    at.run()
    assert not _warnings(at)


def test_a_run_ended_by_another_widget_gets_its_own_message():
    at = _app()
    at.session_state["demo_train"] = TrainingRun(running=True)
    at.slider(key="epochs").set_value(3).run()
    assert not at.exception and _warnings(at) == [TRAINING_INTERRUPTED]


def test_stop_clicked_while_idle_changes_nothing():
    at = _app()
    at.button(key="demo_train_stop").click().run()
    assert not at.exception and not _warnings(at)
    assert at.session_state["demo_train"] == TrainingRun()
    at.button(key="demo_train_go").click().run()
    assert at.session_state["saved"] == "model"


def _script_with_error() -> None:
    import streamlit as st

    from lucid.core.errors import TrainingError
    from lucid.ui.widgets import guard, training_buttons

    def train(*, should_stop) -> None:
        raise TrainingError("Only one class.")

    controls = training_buttons("demo_train")
    if controls.start:
        with guard("training the model"):
            controls.call(train)
    st.write(f"running={st.session_state['demo_train'].running}")


def test_a_failed_run_shows_its_error_and_is_not_left_running():
    at = AppTest.from_function(_script_with_error, default_timeout=30).run()
    at.button(key="demo_train_go").click().run()
    assert not at.exception and [e.value for e in at.error] == ["Only one class."]
    assert at.session_state["demo_train"] == TrainingRun()
    at.run()
    assert not _warnings(at) and not at.error


def press_during_run(at: AppTest, key: str, *, release: str) -> None:
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


def _script_with_hook(hook, steps: int = 50) -> None:
    import streamlit as st

    from lucid.ui.widgets import guard, training_buttons

    def train(n: int, *, should_stop) -> str:
        for step in range(n):
            if should_stop():
                return "cancelled"
            st.session_state["steps"] = step + 1
            hook(step + 1)
        return "model"

    controls = training_buttons("demo_train")
    if controls.start:
        with guard("training the model"):
            st.session_state["saved"] = controls.call(train, steps)
    st.write("page end")


def test_stop_clicked_mid_run_ends_the_run_inside_the_loop():
    holder: dict = {}

    def hook(step: int) -> None:
        if step == 3:
            press_during_run(holder["at"], "demo_train_stop", release="demo_train_go")

    at = AppTest.from_function(_script_with_hook, kwargs={"hook": hook}, default_timeout=30).run()
    holder["at"] = at
    at.button(key="demo_train_go").click().run()
    assert not at.exception and not at.error
    # The run ended at the poll after step 3; the rerun (Stop pressed) says so and the page renders.
    assert at.session_state["steps"] == 3 and "saved" not in at.session_state
    assert _warnings(at) == [TRAINING_STOPPED]
    assert "page end" in [m.value for m in at.markdown]
    assert at.session_state["demo_train"] == TrainingRun()
