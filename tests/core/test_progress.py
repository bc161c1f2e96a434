"""lucid.core.progress: clamped fractions, scaled parts of a job and the cooperative stop."""

import math

import pytest

from lucid.core.errors import TrainingCancelled
from lucid.core.progress import check_stop, clamp, report, scaled


@pytest.mark.parametrize(
    ("fraction", "expected"),
    [(0.0, 0.0), (0.25, 0.25), (1.0, 1.0), (-0.5, 0.0), (-math.inf, 0.0), (1.0000001, 1.0), (7, 1.0)],
)
def test_clamp_holds_fractions_to_zero_one(fraction, expected):
    assert clamp(fraction) == expected


def test_clamp_counts_nan_as_zero():
    assert clamp(math.nan) == 0.0
    assert clamp(float("nan")) == 0.0


def test_clamp_returns_a_float():
    assert type(clamp(1)) is float


def test_report_clamps_and_skips_a_missing_callback():
    seen: list[tuple[float, str]] = []
    report(lambda f, m: seen.append((f, m)), 1.5, "done")
    report(lambda f, m: seen.append((f, m)), math.nan, "start")
    report(None, 0.5, "nobody listens")
    assert seen == [(1.0, "done"), (0.0, "start")]


def test_scaled_maps_zero_one_onto_lo_hi_with_the_prefix():
    seen: list[tuple[float, str]] = []
    part = scaled(lambda f, m: seen.append((f, m)), 0.2, 0.6, prefix="ranker: ")
    assert part is not None
    for fraction in (0.0, 0.5, 1.0):
        part(fraction, f"at {fraction}")
    assert [m for _, m in seen] == ["ranker: at 0.0", "ranker: at 0.5", "ranker: at 1.0"]
    assert [f for f, _ in seen] == pytest.approx([0.2, 0.4, 0.6])


def test_scaled_clamps_the_part_and_the_whole():
    seen: list[float] = []
    part = scaled(lambda f, m: seen.append(f), 0.5, 1.0)
    assert part is not None
    part(-1.0, "")
    part(2.0, "")
    part(math.nan, "")
    assert seen == [0.5, 1.0, 0.5]
    whole: list[float] = []
    beyond = scaled(lambda f, m: whole.append(f), 0.5, 1.5)  # a part set past the end stops at 1
    assert beyond is not None
    beyond(1.0, "")
    assert whole == [1.0]


def test_scaled_parts_nest():
    seen: list[float] = []
    outer = scaled(lambda f, m: seen.append(f), 0.0, 0.5)
    inner = scaled(outer, 0.5, 1.0)
    assert inner is not None
    inner(0.5, "")
    assert seen == pytest.approx([0.375])


def test_scaled_of_no_callback_is_none():
    assert scaled(None, 0.0, 1.0) is None


def test_check_stop_raises_training_cancelled_when_asked():
    with pytest.raises(TrainingCancelled, match="nothing was saved"):
        check_stop(lambda: True)
    with pytest.raises(TrainingCancelled, match="^stopped at epoch 2$"):
        check_stop(lambda: True, "stopped at epoch 2")


def test_check_stop_passes_when_not_asked_or_not_stoppable():
    calls: list[int] = []

    def never() -> bool:
        calls.append(1)
        return False

    check_stop(never)
    check_stop(None)
    assert calls == [1]
