"""Progress reporting and cooperative stopping: the two callbacks every long job takes.

A job reports ``progress(fraction, message)`` with ``fraction`` in [0, 1] and polls ``should_stop()``
between steps; when it returns true the job raises :class:`~lucid.core.errors.TrainingCancelled`
before saving anything. Both callbacks are optional (``None``).

Example:
    >>> seen = []
    >>> part = scaled(lambda f, m: seen.append((round(f, 2), m)), 0.5, 1.0)
    >>> part(0.5, "half of the second half")
    >>> seen
    [(0.75, 'half of the second half')]
"""

from __future__ import annotations

from collections.abc import Callable

from lucid.core.errors import TrainingCancelled

#: ``progress(fraction, message)``; ``None`` when nobody listens.
Progress = Callable[[float, str], None] | None
#: ``should_stop() -> bool``, polled between steps; ``None`` when the job cannot be stopped.
ShouldStop = Callable[[], bool] | None


def clamp(fraction: float) -> float:
    """The fraction held to [0, 1] (a job may overshoot by rounding; NaN counts as 0)."""
    if fraction != fraction:  # NaN
        return 0.0
    return min(max(float(fraction), 0.0), 1.0)


def report(progress: Progress, fraction: float, message: str) -> None:
    """Call ``progress`` with a clamped fraction, if there is one."""
    if progress is not None:
        progress(clamp(fraction), message)


def scaled(progress: Progress, lo: float, hi: float, prefix: str = "") -> Progress:
    """A progress callback for one part of a job that maps the part's [0, 1] onto [lo, hi] of the whole."""
    if progress is None:
        return None
    outer = progress

    def part(fraction: float, message: str) -> None:
        outer(clamp(lo + (hi - lo) * clamp(fraction)), prefix + message)

    return part


def check_stop(
    should_stop: ShouldStop, message: str = "Training was stopped before it finished; nothing was saved."
) -> None:
    """Raise :class:`TrainingCancelled` when a stop was requested."""
    if should_stop is not None and should_stop():
        raise TrainingCancelled(message)
