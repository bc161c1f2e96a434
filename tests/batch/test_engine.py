import functools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lucid.batch.engine import PartitionFailedError, run_partitioned, split_frame
from lucid.core.errors import InvalidInputError


def score_rows(frame: pd.DataFrame, *, weight: float = 2.0) -> pd.DataFrame:
    """A deterministic stand-in for a model: a logistic score of two columns, row by row."""
    z = weight * frame["a"].to_numpy() - frame["b"].to_numpy()
    return pd.DataFrame({"id": frame["id"].to_numpy(), "score": 1 / (1 + np.exp(-z))})


def flaky_score(frame: pd.DataFrame, *, marker_dir: str) -> pd.DataFrame:
    """Fails the first time it sees partition starting at id 40 (marker file), then succeeds."""
    first = int(frame["id"].iloc[0])
    marker = Path(marker_dir) / f"seen-{first}"
    if first == 40 and not marker.exists():
        marker.write_text("x")
        raise ConnectionError("worker lost")
    return score_rows(frame)


def always_fails(frame: pd.DataFrame) -> pd.DataFrame:
    raise ValueError("broken")


@pytest.fixture
def frame():
    rng = np.random.default_rng(0)
    return pd.DataFrame({"id": np.arange(103), "a": rng.normal(size=103), "b": rng.normal(size=103)})


def test_split_frame_covers_every_row_once(frame):
    parts = split_frame(frame, 20)
    assert [len(p) for p in parts] == [20, 20, 20, 20, 20, 3]
    assert pd.concat(parts)["id"].tolist() == list(range(103))


def test_local_equals_direct(frame):
    out, stats = run_partitioned(score_rows, frame, partition_rows=10)
    pd.testing.assert_frame_equal(out, score_rows(frame))
    assert stats.partitions == 11 and stats.retries_used == 0


def test_local_retry_does_not_duplicate(frame, tmp_path):
    progress = []
    out, stats = run_partitioned(
        functools.partial(flaky_score, marker_dir=str(tmp_path)),
        frame,
        partition_rows=20,
        progress=lambda f, m: progress.append(f),
    )
    pd.testing.assert_frame_equal(out, score_rows(frame))
    assert stats.retries_used == 1
    assert progress[-1] == 1.0 and progress == sorted(progress)


def test_local_gives_up_after_retries(frame):
    with pytest.raises(PartitionFailedError, match="failed 2 times"):
        run_partitioned(always_fails, frame, retries=1)


def test_bad_arguments(frame):
    with pytest.raises(InvalidInputError, match="Valid engines: local, dask"):
        run_partitioned(score_rows, frame, engine="spark")
    with pytest.raises(InvalidInputError):
        run_partitioned(score_rows, frame, partition_rows=0)


@pytest.mark.slow
def test_dask_cluster_matches_single_process_row_for_row(frame, tmp_path):
    """A real 2-process Dask cluster on loopback, with one partition failing once and retried."""
    fn = functools.partial(flaky_score, marker_dir=str(tmp_path))
    progress = []
    out, stats = run_partitioned(
        fn, frame, engine="dask", workers=2, partition_rows=10, progress=lambda f, m: progress.append(f)
    )
    pd.testing.assert_frame_equal(out, score_rows(frame))
    assert (tmp_path / "seen-40").exists()  # the failure really happened on a worker
    assert stats.partitions == 11 and stats.workers == 2
    assert len(progress) == 11 and progress[-1] == 1.0
