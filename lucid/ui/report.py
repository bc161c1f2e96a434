"""Self-contained HTML reports for stakeholders.

A report is a title, an optional subtitle and a list of sections; a section holds escaped
paragraphs, plotly figures (interactive, with plotly.js embedded once so the file opens offline),
tables (escaped, formula-safe) and image galleries (small JPEG thumbnails embedded as data URIs,
pixels only, with escaped captions). Any page or CLI command can build one.

Example:
    >>> report = Report("Credit risk review", subtitle="Model: german_credit")
    >>> report.add("Scores", text="120 applicants scored.", table=scored.head(20))
    >>> report.add_gallery("Images", [(image, "cat.png", "tabby 0.91")])
    >>> html_bytes = report.to_html().encode()
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from PIL import Image

from lucid.core.data import neutralise_formulas

_STYLE = """
body { font-family: -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif; margin: 2rem auto;
       max-width: 1100px; color: #1f2933; padding: 0 1rem; }
h1 { margin-bottom: .2rem; } .subtitle { color: #52606d; margin-top: 0; }
h2 { border-bottom: 1px solid #e4e7eb; padding-bottom: .3rem; margin-top: 2rem; }
table { border-collapse: collapse; font-size: .85rem; margin: .5rem 0 1rem; }
th, td { border: 1px solid #e4e7eb; padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: #f5f7fa; } .note { color: #52606d; font-size: .85rem; }
.footer { margin-top: 3rem; color: #7b8794; font-size: .8rem; }
.gallery { display: flex; flex-wrap: wrap; gap: .75rem; margin: .5rem 0 1rem; }
.gallery figure { margin: 0; width: 170px; font-size: .8rem; }
.gallery img { display: block; max-width: 160px; max-height: 160px; border: 1px solid #e4e7eb; }
.gallery figcaption { margin-top: .25rem; overflow-wrap: anywhere; }
.gallery .name { color: #52606d; }
"""

THUMBNAIL_PX = 160
GALLERY_LIMIT = 200

ImageLike = Image.Image | np.ndarray


def thumbnail_data_uri(image: ImageLike, *, max_side: int = THUMBNAIL_PX, quality: int = 80) -> str:
    """A JPEG thumbnail of ``image`` (at most ``max_side`` px on its long side) as a ``data:`` URI.

    Only the pixels are kept: the image is rebuilt from its pixel array, so no EXIF, ICC profile,
    comment or other metadata of the source reaches the thumbnail. Grey, 16-bit and float images are
    scaled to 8 bits, palette and CMYK images converted to RGB, transparent areas put on white.
    """
    if isinstance(image, Image.Image) and image.mode not in ("L", "RGB", "RGBA", "I", "I;16", "F"):
        image = image.convert("RGBA" if image.mode in ("P", "PA", "LA") else "RGB")  # palette, CMYK, ...
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)) or arr.size == 0:
        raise ValueError(f"thumbnail_data_uri() needs a grey, RGB or RGBA image, not shape {arr.shape}.")
    if arr.dtype != np.uint8:
        values = arr.astype(np.float64)
        finite = values[np.isfinite(values)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        scaled = (np.nan_to_num(values, nan=lo) - lo) / (hi - lo if hi > lo else 1.0)
        arr = np.clip(np.round(scaled * 255.0), 0, 255).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 4:
        alpha = arr[..., 3:4].astype(np.float32) / 255.0
        arr = np.round(arr[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    thumb = Image.fromarray(np.ascontiguousarray(arr))
    thumb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    thumb.convert("RGB").save(buffer, format="JPEG", quality=quality, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


@dataclass
class Section:
    """One heading with its paragraphs, figures, tables and trusted HTML fragments."""

    heading: str
    paragraphs: list[str] = field(default_factory=list)
    figures: list[go.Figure] = field(default_factory=list)
    tables: list[pd.DataFrame] = field(default_factory=list)
    html_fragments: list[str] = field(default_factory=list)


class Report:
    """An HTML report that opens offline in any browser."""

    def __init__(self, title: str, *, subtitle: str = "", footer: str = "") -> None:
        self.title = title
        self.subtitle = subtitle
        self.footer = footer
        self.sections: list[Section] = []

    def add(
        self,
        heading: str,
        *,
        text: str | list[str] | None = None,
        figure: go.Figure | list[go.Figure] | None = None,
        table: pd.DataFrame | None = None,
        html_fragment: str | None = None,
    ) -> Section:
        """Add a section. ``text`` is escaped; ``html_fragment`` must already be safe (e.g. from
        :func:`lucid.ui.plots.text_highlight_html`, which escapes every token)."""
        section = Section(heading)
        if text:
            section.paragraphs.extend([text] if isinstance(text, str) else text)
        if figure is not None:
            section.figures.extend(figure if isinstance(figure, list) else [figure])
        if table is not None:
            section.tables.append(table)
        if html_fragment:
            section.html_fragments.append(html_fragment)
        self.sections.append(section)
        return section

    def add_gallery(
        self,
        heading: str,
        items: Sequence[tuple[ImageLike, str, str]],
        *,
        text: str | None = None,
        limit: int = GALLERY_LIMIT,
        max_side: int = THUMBNAIL_PX,
    ) -> Section:
        """Add a section of image thumbnails, each with its name and a caption under it.

        ``items`` are (image, name, caption); names and captions are escaped. Thumbnails are small
        JPEGs embedded in the file (see :func:`thumbnail_data_uri`), so the report stays
        self-contained; only the first ``limit`` images are shown, and the section says so. Only
        pass images the page already shows to the user: the thumbnails carry no metadata, but they
        are the pixels themselves.
        """
        shown = list(items[:limit])
        paragraphs = [text] if text else []
        if len(items) > len(shown):
            paragraphs.append(f"Showing the first {len(shown):,} of {len(items):,} images.")
        figures = []
        for image, name, caption in shown:
            label = html.escape(str(name))
            figures.append(
                f"<figure><img src='{thumbnail_data_uri(image, max_side=max_side)}' alt='{label}'>"
                f"<figcaption><span class='name'>{label}</span><br>{html.escape(str(caption))}</figcaption>"
                "</figure>"
            )
        section = self.add(heading, text=paragraphs or None)
        section.html_fragments.append("<div class='gallery'>" + "".join(figures) + "</div>")
        return section

    def to_html(self) -> str:
        parts = [
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
            f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head><body>",
            f"<h1>{html.escape(self.title)}</h1>",
        ]
        if self.subtitle:
            parts.append(f"<p class='subtitle'>{html.escape(self.subtitle)}</p>")
        plotly_included = False
        for section in self.sections:
            parts.append(f"<h2>{html.escape(section.heading)}</h2>")
            parts.extend(f"<p>{html.escape(p)}</p>" for p in section.paragraphs)
            parts.extend(section.html_fragments)
            for fig in section.figures:
                parts.append(
                    fig.to_html(
                        full_html=False, include_plotlyjs=not plotly_included, config={"displaylogo": False}
                    )
                )
                plotly_included = True
            for table in section.tables:
                parts.append(
                    neutralise_formulas(table).to_html(index=False, escape=True, border=0, na_rep="")
                )
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        footer = html.escape(self.footer) + " · " if self.footer else ""
        parts.append(f"<p class='footer'>{footer}Generated by Lucid on {stamp}.</p></body></html>")
        return "\n".join(parts)
