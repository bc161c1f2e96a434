"""The list of Lucid's pages: what app.py navigates over and what Home describes.

A domain page is listed only once its file exists in ``app_pages/``, so there are never placeholder pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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

DOMAIN_PAGES: tuple[PageInfo, ...] = (
    PageInfo(
        "app_pages/nlp.py",
        "Review sentiment",
        ":material/reviews:",
        "Customer experience and product teams",
        "Score customer reviews, tickets or survey answers as positive or negative, see which words "
        "drove each score, find what drives negative feedback across thousands of texts, and train the "
        "model on your own labelled texts.",
    ),
    PageInfo(
        "app_pages/vision.py",
        "Image classification",
        ":material/image:",
        "Product and operations teams",
        "Classify photos into 1,000 everyday categories, see which regions of the picture drove each "
        "prediction, and adapt the model to your own categories from a few hundred labelled images.",
    ),
    PageInfo(
        "app_pages/medical.py",
        "Medical imaging",
        ":material/radiology:",
        "Clinical researchers and health-tech product teams (research demo, not for clinical use)",
        "Open DICOM, NIfTI or PNG scans with proper windowing and with patient details hidden, run a "
        "demo brain-MRI classifier, see where it looked, and train a model on your own labelled scans.",
    ),
    PageInfo(
        "app_pages/finance.py",
        "Credit risk",
        ":material/account_balance:",
        "Credit-risk analysts and their stakeholders",
        "Score loan applicants for probability of default with plain-language reasons for each score, "
        "check the model with the statistics risk teams use (AUC, Gini, KS, calibration, drift), try "
        "what-if changes, and train a model on your own portfolio.",
    ),
    PageInfo(
        "app_pages/recommend.py",
        "Recommendations",
        ":material/recommend:",
        "Merchandising and product teams",
        "See which items the system would recommend to a customer and why, check that it beats simply "
        "recommending what is popular, and train it on your own interaction log.",
    ),
)


def available_pages() -> list[PageInfo]:
    """Domain pages that exist, in menu order."""
    return [p for p in DOMAIN_PAGES if p.exists]
