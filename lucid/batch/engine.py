"""Batch work split into partitions, run in this process or on a Dask cluster.

The data (a DataFrame of rows to score, or of image paths) is cut into partitions of
``partition_rows``; each partition goes through a picklable function (a module-level function or
a ``functools.partial`` of one) that returns a DataFrame with one output row per input row.
Results come back in order, with progress, whatever order the workers finish in. A partition
that fails is retried (``retries`` times) as a whole, so no row is lost or duplicated: the output
of partition *k* is taken exactly once. Workers load their model once per process because the
domain services cache their loaded models per process.

Engines:
- ``local``: this process, one partition after another (the reference).
- ``dask``: a Dask cluster. ``address=None`` starts a private local cluster of ``workers`` processes
  bound to 127.0.0.1; pass ``tcp://host:8786`` to use an existing cluster (GPU workers are used by the
  domain code through ``lucid.core.device`` on each worker).

Example:
    >>> out = run_partitioned(functools.partial(score_rows, model="german_credit"), frame,
    ...                       engine="dask", workers=2, partition_rows=5_000)
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from lucid.core.errors import InvalidInputError, LucidError

log = logging.getLogger("lucid.distributed")

ENGINES = ("local", "dask")
#: The deployment's Dask scheduler (``tcp://host:8786``) that the pages' batch jobs may use.
SCHEDULER_VAR = "LUCID_DASK_SCHEDULER"
#: Without a scheduler: worker processes of a private local cluster the pages may start for a batch job.
WORKERS_VAR = "LUCID_DASK_WORKERS"
PartitionFn = Callable[[pd.DataFrame], pd.DataFrame]
Progress = Callable[[float, str], None]


class PartitionFailedError(LucidError, RuntimeError):
    """A partition kept failing after its retries; nothing partial was returned."""


@dataclass(frozen=True)
class RunStats:
    """What a run did: engine, workers, partitions, retries, seconds."""

    engine: str
    workers: int
    partitions: int
    retries_used: int | None  # None where the engine retries internally (Dask)
    seconds: float


def split_frame(frame: pd.DataFrame, partition_rows: int) -> list[pd.DataFrame]:
    """Consecutive slices of at most ``partition_rows`` rows (the last may be shorter)."""
    if partition_rows < 1:
        raise InvalidInputError("partition_rows must be at least 1.")
    return [frame.iloc[start : start + partition_rows] for start in range(0, len(frame), partition_rows)]


def _check_output(k: int, part: pd.DataFrame, out: object) -> pd.DataFrame:
    if not isinstance(out, pd.DataFrame) or len(out) != len(part):
        got = len(out) if isinstance(out, pd.DataFrame) else type(out).__name__
        raise PartitionFailedError(f"Partition {k} returned {got} rows for {len(part)} input rows.")
    return out


def _run_local(
    fn: PartitionFn, parts: list[pd.DataFrame], retries: int, progress: Progress | None
) -> tuple[list[pd.DataFrame], int]:
    used = 0
    outputs: list[pd.DataFrame] = []
    for k, part in enumerate(parts):
        for attempt in range(retries + 1):
            try:
                outputs.append(_check_output(k, part, fn(part)))
                break
            except LucidError:
                raise
            except Exception as exc:  # noqa: BLE001 - a failed partition is retried whatever it raised
                if attempt == retries:
                    raise PartitionFailedError(
                        f"Partition {k} failed {retries + 1} times ({type(exc).__name__})."
                    ) from exc
                used += 1
                log.warning("partition %d failed (%s); retrying", k, type(exc).__name__)
        if progress:
            progress((k + 1) / len(parts), f"{k + 1} of {len(parts)} partitions done")
    return outputs, used


def _run_dask(
    fn: PartitionFn,
    parts: list[pd.DataFrame],
    retries: int,
    progress: Progress | None,
    workers: int,
    address: str | None,
) -> tuple[list[pd.DataFrame], None]:
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if address is None:
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
    client = Client(cluster if cluster is not None else address)
    try:
        futures = [
            client.submit(fn, part, key=f"lucid-part-{k}-{id(parts)}", retries=retries, pure=False)
            for k, part in enumerate(parts)
        ]
        index_of = {f.key: k for k, f in enumerate(futures)}
        outputs: list[pd.DataFrame | None] = [None] * len(parts)
        done = 0
        for future in as_completed(futures):
            k = index_of[future.key]
            try:
                result = future.result()
            except LucidError:
                raise
            except Exception as exc:  # noqa: BLE001 - retries are exhausted by now
                raise PartitionFailedError(
                    f"Partition {k} failed {retries + 1} times ({type(exc).__name__})."
                ) from exc
            outputs[k] = _check_output(k, parts[k], result)
            done += 1
            if progress:
                progress(done / len(parts), f"{done} of {len(parts)} partitions done")
        return [o for o in outputs if o is not None], None
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run_partitioned(
    fn: PartitionFn,
    frame: pd.DataFrame,
    *,
    engine: str = "local",
    workers: int = 2,
    partition_rows: int = 10_000,
    retries: int = 2,
    address: str | None = None,
    progress: Progress | None = None,
) -> tuple[pd.DataFrame, RunStats]:
    """Apply ``fn`` to ``frame`` partition by partition and return the outputs concatenated in order.

    Args:
        fn: picklable function DataFrame -> DataFrame with one output row per input row.
        frame: the rows to process.
        engine: ``"local"`` or ``"dask"``.
        workers: worker processes for a private local Dask cluster.
        partition_rows: rows per partition.
        retries: how often a failed partition is run again before the run fails.
        address: an existing Dask scheduler, instead of a private local cluster.
        progress: called with (fraction done, message) as partitions finish.

    Raises:
        InvalidInputError: unknown engine or bad sizes.
        PartitionFailedError: a partition failed more than ``retries`` times.
    """
    if engine not in ENGINES:
        raise InvalidInputError(f"Unknown engine '{engine}'. Valid engines: {', '.join(ENGINES)}.")
    if workers < 1:
        raise InvalidInputError("workers must be at least 1.")
    start = time.perf_counter()
    parts = split_frame(frame, partition_rows)
    if not parts:
        return frame.iloc[0:0].copy(), RunStats(engine, workers, 0, 0, 0.0)
    used: int | None
    if engine == "local":
        outputs, used = _run_local(fn, parts, retries, progress)
    else:
        outputs, used = _run_dask(fn, parts, retries, progress, workers, address)
    result = pd.concat(outputs, ignore_index=True)
    stats = RunStats(
        engine, workers if engine == "dask" else 1, len(parts), used, time.perf_counter() - start
    )
    log.info("batch run: engine=%s partitions=%d seconds=%.2f", engine, len(parts), stats.seconds)
    return result, stats


@dataclass(frozen=True)
class BatchEngine:
    """Where a page's batch job may run: this process, or a Dask cluster set up by the deployment."""

    engine: str
    label: str
    address: str | None = None
    workers: int = 1


def configured_engines() -> list[BatchEngine]:
    """The engines a page offers for batch jobs: always this process; a Dask cluster when the
    deployment names one (:data:`SCHEDULER_VAR`) or allows a private local one (:data:`WORKERS_VAR`).

    Users never type a cluster address: only whoever runs the app decides where work may go.
    """
    engines = [BatchEngine("local", "This app server (one process)")]
    address = os.environ.get(SCHEDULER_VAR, "").strip()
    if address:
        engines.append(BatchEngine("dask", f"The Dask cluster at {address}", address=address))
        return engines
    raw = os.environ.get(WORKERS_VAR, "").strip()
    try:
        workers = int(raw) if raw else 0
    except ValueError:
        log.warning("%s is not a whole number; no local Dask cluster is offered", WORKERS_VAR)
        workers = 0
    if workers > 0:
        engines.append(
            BatchEngine("dask", f"A local Dask cluster ({workers} worker processes)", workers=workers)
        )
    return engines
