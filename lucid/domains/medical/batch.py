"""The medical batch job: many scans classified (and with ``explain`` located by Grad-CAM)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pandas as pd

from lucid.batch.engine import RunStats
from lucid.core.archives import files_from_path, is_zip, read_zip
from lucid.core.store import shared_service
from lucid.domains.base import BatchJob, Request
from lucid.domains.medical.cards import DISCLAIMER
from lucid.domains.medical.service import DEFAULT_MODEL, MedicalService


def scan_files(files: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """Each file as it is, each zip as its members (read by the safe reader)."""
    out: list[tuple[str, bytes]] = []
    for filename, data in files:
        if is_zip(data):
            out.extend((m.path, m.data) for m in read_zip(data).members)
        else:
            out.append((filename, data))
    return out


class MedicalBatch(BatchJob):
    """One row per scan: the probabilities of each class; with ``explain`` the Grad-CAM peak."""

    #: Each file is a scan to render, classify and maybe explain.
    partition_rows: ClassVar[int] = 64

    def rows(self, request: Request) -> pd.DataFrame:
        """One row per file of ``request.data`` (a scan, a folder or a zip): ``file`` and ``data``.

        Raises:
            ModelNotFoundError: unknown model (before any work is sent to workers).
        """
        shared_service(MedicalService).check_name(request.model or DEFAULT_MODEL)
        files = scan_files(files_from_path(request.data))
        return pd.DataFrame({"file": [f for f, _ in files], "data": [d for _, d in files]})

    def score_partition(
        self, frame: pd.DataFrame, *, model: str | None, explain: bool, options: Mapping[str, Any]
    ) -> pd.DataFrame:
        """One row per input row: ``file`` and ``record``, the file's output row as a dict (an
        unreadable file gets its error, never a crash), so the table's columns and types never depend
        on how the files were partitioned."""
        service = shared_service(MedicalService)
        name = model or DEFAULT_MODEL
        records = [
            service.score_files([(f, d)], name, explain=explain).to_dict("records")[0]
            for f, d in zip(frame["file"], frame["data"], strict=True)
        ]
        return pd.DataFrame({"file": frame["file"].to_numpy(), "record": records})

    def finish(
        self,
        frame: pd.DataFrame,
        scored: pd.DataFrame,
        *,
        model: str | None,
        options: Mapping[str, Any],
        stats: RunStats,
    ) -> tuple[pd.DataFrame, dict[str, Any]]:
        """One row per file in input order (file, prediction, p_<class>..., then the rest), and the counts."""
        table = pd.DataFrame(scored["record"].tolist())
        first = ["file", "prediction", *[c for c in table if str(c).startswith("p_")]]
        table = table[[c for c in first if c in table] + [c for c in table if c not in first]]
        counts = table["prediction"].value_counts().to_dict() if "prediction" in table else {}
        return table, {
            "model": model or DEFAULT_MODEL,
            "scored": int((table["error"] == "").sum()),
            "failed": int((table["error"] != "").sum()),
            "predictions": counts,
            "note": DISCLAIMER,
        }
