"""The list of Lucid's pages: what app.py navigates over and what Home describes, read from
:data:`lucid.domains.DOMAINS` (a domain page is listed only once its file exists in ``app_pages/``,
so there are never placeholder pages)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lucid.domains import DOMAINS

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class PageInfo:
    path: str
    title: str
    icon: str
    audience: str
    summary: str

    @property
    def exists(self) -> bool:
        return (ROOT / self.path).is_file()


HOME = PageInfo("app_pages/home.py", "Home", ":material/home:", "", "")


def domain_pages() -> list[PageInfo]:
    """Every domain's page, in menu order."""
    return [PageInfo(d.page, d.title, d.icon, d.audience, d.summary) for d in DOMAINS.values()]


def available_pages() -> list[PageInfo]:
    """Domain pages that exist, in menu order."""
    return [p for p in domain_pages() if p.exists]
