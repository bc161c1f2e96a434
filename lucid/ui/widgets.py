"""Small Streamlit widgets shared by the pages: the error boundary, model cards, downloads and the
Train / Stop buttons of a training run."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import pandas as pd
import streamlit as st

from lucid.core.data import to_safe_csv
from lucid.core.errors import LucidError, TrainingCancelled
from lucid.core.progress import clamp
from lucid.domains.base import Domain, ModelCard

log = logging.getLogger("lucid.pages")

T = TypeVar("T")

TRAINING_STOPPED = "Training was stopped; nothing was saved."
TRAINING_INTERRUPTED = (
    "Training was stopped because the page changed while it ran (a setting or an upload was changed); "
    "nothing was saved. Click Train to start again."
)


@contextlib.contextmanager
def guard(action: str) -> Iterator[None]:
    """The page boundary: a service error becomes one friendly ``st.error``; nothing else leaks.

    Known errors (:class:`LucidError`) show their own message; a training run stopped on request
    (:class:`TrainingCancelled`) shows :data:`TRAINING_STOPPED` as a warning. Anything unexpected is logged
    (type only, no user data) and shown as a short apology, never as a traceback.
    """
    try:
        yield
    except TrainingCancelled:
        st.warning(TRAINING_STOPPED, icon=":material/stop_circle:")
    except LucidError as exc:
        st.error(str(exc), icon=":material/error:")
    except Exception as exc:  # noqa: BLE001 - the boundary catches everything (st.stop/st.rerun are not Exceptions)
        log.error("unexpected error while %s: %s", action, type(exc).__name__, exc_info=True)
        st.error(
            f"Something went wrong while {action}. Your data is unchanged; "
            "please check the input and try again.",
            icon=":material/error:",
        )


def model_card(
    card: ModelCard | Mapping[str, Any], *, expanded: bool = False, title: str = "Model card"
) -> None:
    """Render a model card: a :class:`ModelCard`, or a mapping of heading -> text, number, dict or table."""
    sections = card.sections() if isinstance(card, ModelCard) else card
    with st.expander(title, expanded=expanded, icon=":material/badge:"):
        for heading, value in sections.items():
            if isinstance(value, pd.DataFrame):
                st.markdown(f"**{heading}**")
                st.dataframe(value, hide_index=True, width="stretch")
            elif isinstance(value, Mapping):
                st.markdown(f"**{heading}**")
                st.markdown("\n".join(f"- {k}: {_fmt(v)}" for k, v in value.items()))
            else:
                st.markdown(f"**{heading}:** {_fmt(value)}")


def progress_bar(text: str = "Starting") -> tuple[Any, Callable[[float, str], None]]:
    """A Streamlit progress bar and the :data:`~lucid.core.progress.Progress` callback that moves it
    (fractions clamped to [0, 1]); ``bar.empty()`` removes it when the work is done."""
    bar = st.progress(0.0, text=text)

    def report(fraction: float, message: str) -> None:
        bar.progress(clamp(fraction), text=message)

    return bar, report


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


# ------------------------------------------------------------------------------------------------
# Train / Stop
# ------------------------------------------------------------------------------------------------
@dataclass
class TrainingRun:
    """What the session knows about a page's training run (kept in ``st.session_state``).

    It is mutated in place, never re-assigned, while a run goes: every read or write of
    ``st.session_state`` is a point where Streamlit may end the run, so clearing ``running`` the
    moment the service returns must not go through it.
    """

    running: bool = False
    stop_requested: bool = False


class TrainingControls:
    """The Train and Stop buttons of one training run, from :func:`training_buttons`.

    How Stop works: a click makes Streamlit rerun the page, and Streamlit ends the run in progress at
    its next interrupt point. :meth:`should_stop`, which the service polls before every training
    step, reads the session state, which is such a point, so the old run ends inside the training
    loop, before the service reaches its save step. The new run finds the training still marked
    running and shows :data:`TRAINING_STOPPED` (or :data:`TRAINING_INTERRUPTED` when another widget
    caused the rerun). When a stop is requested through :attr:`TrainingRun.stop_requested`,
    :meth:`should_stop` returns true, the service raises :class:`TrainingCancelled` and
    :func:`guard` shows the same message.
    """

    def __init__(self, key: str, start: bool) -> None:
        self.key = key
        self.start = start

    @property
    def run(self) -> TrainingRun:
        return st.session_state[self.key]

    def should_stop(self) -> bool:
        """Polled by the training loop every step (see the class docstring)."""
        return bool(st.session_state[self.key].stop_requested)

    def call(self, train: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``train(*args, should_stop=self.should_stop, **kwargs)`` as this page's training run.

        Raises whatever ``train`` raises (:class:`TrainingCancelled` included, for :func:`guard`).
        If Streamlit ends the script inside ``train`` (Stop was clicked), the run stays marked as
        running, which is how the next run knows it was stopped.
        """
        record = self.run
        record.running = True
        try:
            result = train(*args, should_stop=self.should_stop, **kwargs)
        except Exception:
            record.running = record.stop_requested = False
            raise
        record.running = record.stop_requested = False  # before any Streamlit call: the model is saved
        return result


def _request_stop(key: str) -> None:
    record = st.session_state.get(key)
    if isinstance(record, TrainingRun) and record.running:
        record.stop_requested = True


def training_buttons(
    key: str,
    *,
    train_key: str | None = None,
    stop_key: str | None = None,
    label: str = "Train",
    disabled: bool = False,
) -> TrainingControls:
    """Train and Stop buttons side by side, and the message when the previous run was stopped.

    ``key`` names the run's :class:`TrainingRun` in the session state; the buttons' keys default to
    ``{key}_go`` and ``{key}_stop``. Pass the service call through :meth:`TrainingControls.call`
    inside :func:`guard`:

        controls = training_buttons("vision_train")
        if controls.start:
            with guard("training the model"):
                result = controls.call(service.train, data, name, config, progress=report)
    """
    record = st.session_state.get(key)
    if not isinstance(record, TrainingRun):
        record = TrainingRun()
        st.session_state[key] = record
    go_col, stop_col, _ = st.columns([1, 1, 3])
    start = go_col.button(
        label,
        key=train_key or f"{key}_go",
        type="primary",
        icon=":material/model_training:",
        disabled=disabled,
        width="stretch",
    )
    stop_col.button(
        "Stop",
        key=stop_key or f"{key}_stop",
        icon=":material/stop:",
        on_click=_request_stop,
        args=(key,),
        help="Stops the training run in progress; nothing is saved.",
        width="stretch",
    )
    if record.running:  # the previous run ended inside the training loop
        st.warning(
            TRAINING_STOPPED if record.stop_requested else TRAINING_INTERRUPTED, icon=":material/stop_circle:"
        )
        record.running = record.stop_requested = False
    return TrainingControls(key, bool(start) and not disabled)


# ------------------------------------------------------------------------------------------------
# Batch export on a chosen engine
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchExport:
    """A finished export of one session: the CSV bytes and how the run went."""

    csv: bytes
    rows: int
    engine: str
    partitions: int
    seconds: float


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame's values as text, to fingerprint it; bytes that are not text (image files) by their hash."""
    import hashlib

    try:
        return frame.astype(str)
    except UnicodeDecodeError:
        return frame.map(
            lambda v: hashlib.sha256(v).hexdigest() if isinstance(v, bytes | bytearray) else str(v)
        )


def batch_export(
    key: str,
    domain: Domain,
    frame: pd.DataFrame,
    *,
    model: str,
    options: Mapping[str, Any] | None = None,
    explain_label: str | None = "Add SHAP explanations for every row",
    file_name: str = "export.csv",
) -> BatchExport | None:
    """The page's batch job: score (and explain) every row through the domain's batch job,
    on this server or on a Dask cluster the deployment configured, and offer the CSV.

    The same batch job as ``lucid <domain> score --engine ...``, so a page export
    and a CLI run of the same rows give the same table. The finished export is kept in this session
    only; changing the rows, the model or the options drops it.

    Args:
        key: widget-key prefix of the page (``"nlp_batch"``).
        domain: the domain (its :class:`~lucid.domains.base.BatchJob` does the work).
        frame: the rows to process, as the domain's ``batch.rows`` would return them.
        model: the model name.
        options: the domain's own score options.
        explain_label: the label of the "explain too" checkbox; ``None`` for a domain whose rows always
            carry their explanation (no checkbox, ``explain=False``).
        file_name: the download's file name.
    """
    import functools
    import hashlib

    from lucid.batch.engine import configured_engines, run_partitioned

    engines = configured_engines()
    labels = [e.label for e in engines]
    if len(engines) > 1:
        label = st.radio("Run the export on", labels, key=f"{key}_engine", horizontal=True)
    else:
        label = labels[0]
        st.caption(
            "Runs on this app server. Whoever runs Lucid can add a Dask cluster for large batches "
            "(LUCID_DASK_SCHEDULER, or LUCID_DASK_WORKERS for local worker processes)."
        )
    engine = engines[labels.index(label)]
    explain = explain_label is not None and st.checkbox(explain_label, key=f"{key}_explain")
    opts = dict(options or {})
    digest = hashlib.sha256(pd.util.hash_pandas_object(_as_text(frame), index=True).to_numpy().tobytes())
    stamp = f"{digest.hexdigest()}|{model}|{explain}|{sorted(opts.items())}|{engine}"
    state_key = f"{key}_export_result"
    held = st.session_state.get(state_key)
    if held is not None and held[0] != stamp:
        st.session_state.pop(state_key, None)
        held = None
    if st.button("Run the export", key=f"{key}_export_run", icon=":material/play_arrow:"):
        bar, report = progress_bar()

        with guard("running the export"):
            scored, stats = run_partitioned(
                functools.partial(domain.batch.score_partition, model=model, explain=explain, options=opts),
                frame,
                engine=engine.engine,
                workers=engine.workers,
                address=engine.address,
                partition_rows=domain.batch.partition_rows,
                progress=report,
            )
            scored, _ = domain.batch.finish(frame, scored, model=model, options=opts, stats=stats)
            done = BatchExport(
                to_safe_csv(scored), len(scored), stats.engine, stats.partitions, stats.seconds
            )
            st.session_state[state_key] = held = (stamp, done)
        bar.empty()
    if held is None:
        return None
    result: BatchExport = held[1]
    st.caption(
        f"{result.rows:,} rows in {result.partitions} partitions on {label[0].lower() + label[1:]}, "
        f"{result.seconds:.1f} s."
    )
    st.download_button(
        "Download the export (CSV)",
        result.csv,
        file_name=file_name,
        mime="text/csv",
        key=f"{key}_export_csv",
        icon=":material/download:",
    )
    return result
