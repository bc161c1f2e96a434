"""The domains of Lucid, in menu order: the one table that the CLI, ``build_defaults``, the page
catalogue, the batch export and the common contract test read.

Adding a domain is one package under ``lucid/domains/`` (its ``domain.py`` subclasses
:class:`~lucid.domains.base.Domain`) and one line below. Importing a domain imports its models'
libraries (torch, xgboost), so the table is filled on first use.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping

from lucid.domains.base import Domain


@functools.cache
def _load() -> dict[str, Domain]:
    from lucid.domains.finance.domain import FinanceDomain
    from lucid.domains.medical.domain import MedicalDomain
    from lucid.domains.nlp.domain import NLPDomain
    from lucid.domains.recommend.domain import RecommendDomain
    from lucid.domains.vision.domain import VisionDomain

    domains: list[Domain] = [NLPDomain(), VisionDomain(), MedicalDomain(), FinanceDomain(), RecommendDomain()]
    return {d.name: d for d in domains}


class _Domains(Mapping[str, Domain]):
    """Domain name -> :class:`Domain`, in menu order (a read-only mapping, filled on first use)."""

    def __getitem__(self, name: str) -> Domain:
        return _load()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(_load())

    def __len__(self) -> int:
        return len(_load())


DOMAINS: Mapping[str, Domain] = _Domains()

__all__ = ["DOMAINS", "Domain"]
