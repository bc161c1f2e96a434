"""The vision batch job: many image files classified (and explained), here or on a Dask cluster."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import pandas as pd
from PIL import Image

from lucid.batch.engine import RunStats
from lucid.core.archives import files_from_path, is_zip, read_zip
from lucid.core.data import IMAGE_EXTENSIONS
from lucid.core.errors import InvalidInputError
from lucid.core.store import shared_service
from lucid.domains.base import BatchJob, Request
from lucid.domains.vision.data import decode_into
from lucid.domains.vision.explain import DEFAULT_SHAP_EVALS
from lucid.domains.vision.service import DEFAULT_MODEL, VisionService
from lucid.explain.explanation import reproducible_shap


def batch_frame(files: Sequence[tuple[str, bytes]]) -> pd.DataFrame:
    """The rows of a batch ``score`` for these files: one per file to classify, with ``image`` (its name),
    ``data`` (its bytes, decoded in the partition) and ``problem`` (why it is skipped, else empty).

    Zips are opened here with the safe reader; what cannot be an image (members skipped by the reader,
    non-image members, unreadable archives) gets a row with its ``problem`` already set. The CLI and the
    page's batch job build their rows here, so the same files give the same rows.

    Args:
        files: (file name, bytes) pairs in order; a zip contributes its members in place.

    Raises:
        InvalidInputError: no file that could be an image.
    """
    names: list[str] = []
    blobs: list[bytes] = []
    problems: list[str] = []

    def add(name: str, blob: bytes, problem: str = "") -> None:
        names.append(name)
        blobs.append(blob)
        problems.append(problem)

    for filename, blob in files:
        if not is_zip(blob):
            add(filename, blob)
            continue
        try:
            archive = read_zip(blob)
        except InvalidInputError as exc:
            add(filename, b"", f"{filename}: {exc}")
            continue
        for skipped in archive.skipped:
            add(f"{filename}/{skipped}", b"", f"{filename}/{skipped}: skipped")
        for member in archive.members:
            name = f"{filename}/{member.path}"
            if member.name.lower().endswith(IMAGE_EXTENSIONS):
                add(name, member.data)
            else:
                add(name, b"", f"{name}: not an image file")
    if not any(p == "" for p in problems):
        raise InvalidInputError(f"No usable image was found ({'; '.join(problems[:5]) or 'no files'}).")
    return pd.DataFrame({"image": names, "data": blobs, "problem": problems})


def _explanation_columns(service: VisionService, image: Image.Image, model: str, max_evals: int) -> dict:
    with reproducible_shap():
        result = service.explain(image, model, max_evals=max_evals)
    regions = result.region_table(cells=3).sort_values("SHAP value", ascending=False).iloc[0]
    return {
        "explained_class": result.class_name,
        "shap_base_value": float(result.shap.base_values),
        "shap_strongest_region_row_of_3": int(regions["region row"]),
        "shap_strongest_region_col_of_3": int(regions["region column"]),
        "shap_faithfulness_10pct": result.shap_faithfulness[0].score,
        "gradcam_faithfulness_10pct": result.gradcam_faithfulness[0].score,
    }


class VisionBatch(BatchJob):
    """Image files decoded with the safe decoder, classified in batches and optionally explained."""

    #: Each image is decoded and classified, and with ``explain`` costs a few hundred model calls,
    #: so partitions are small enough to spread over a cluster's workers.
    partition_rows: ClassVar[int] = 32

    def rows(self, request: Request) -> pd.DataFrame:
        """The :func:`batch_frame` of the image, zip or folder ``request.data`` (one row per file)."""
        shared_service(VisionService).check_name(request.model or DEFAULT_MODEL)
        return batch_frame(files_from_path(request.data))

    def score_partition(
        self, frame: pd.DataFrame, *, model: str | None, explain: bool, options: Mapping[str, Any]
    ) -> pd.DataFrame:
        """One row per input row: ``image``, ``problem`` (set when the file could not be decoded) and
        ``record``, the output row of a decoded image as a dict (``None`` for a skipped file), so the
        table's columns and types never depend on how the files were partitioned."""
        service = shared_service(VisionService)
        model = model or DEFAULT_MODEL
        problems = frame["problem"].tolist()
        names: list[str] = []
        images: list[Image.Image] = []
        decoded: list[int] = []
        for pos, (name, blob) in enumerate(zip(frame["image"], frame["data"], strict=True)):
            if problems[pos]:
                continue
            found: list[str] = []
            decode_into(name, blob, names, images, found)
            if found:
                problems[pos] = found[0]
            else:
                decoded.append(pos)
        records: list[dict[str, Any] | None] = [None] * len(frame)
        if images:
            top_k = int(options.get("top_k") or 5)
            table = service.classify(list(zip(names, images, strict=True)), model, k=top_k)
            max_evals = int(options.get("max_evals") or DEFAULT_SHAP_EVALS)
            for pos, row, image in zip(decoded, table.to_dict("records"), images, strict=True):
                if explain:
                    row.update(_explanation_columns(service, image, model, max_evals))
                records[pos] = row
        return pd.DataFrame({"image": frame["image"].to_numpy(), "problem": problems, "record": records})

    def finish(
        self,
        frame: pd.DataFrame,
        scored: pd.DataFrame,
        *,
        model: str | None,
        options: Mapping[str, Any],
        stats: RunStats,
    ) -> tuple[pd.DataFrame, dict[str, Any]]:
        """The table of the images that were classified, in input order; the skipped files are counted.

        Raises:
            InvalidInputError: not one file could be decoded (the message lists the first problems).
        """
        ok = scored["problem"] == ""
        if not ok.any():
            detail = "; ".join(scored["problem"].head(5))
            raise InvalidInputError(f"No usable image was found ({detail}).")
        table = pd.DataFrame(scored.loc[ok, "record"].tolist())
        return table, {"scored": len(table), "skipped": int((~ok).sum()), "model": model or DEFAULT_MODEL}
