"""Fixtures of the credit-risk tests: the German credit default, built once per test session."""

import pytest

from lucid.core.store import ModelStore
from lucid.domains.finance.service import FinanceService


@pytest.fixture(scope="session")
def german_store(tmp_path_factory):
    """A model store holding the German credit default, built once per test session."""
    root = tmp_path_factory.getbasetemp() / "finance-store"
    FinanceService(ModelStore(root)).load("german_credit")
    return root


@pytest.fixture
def service(german_store):
    return FinanceService(ModelStore(german_store))


@pytest.fixture
def german(service):
    return service.load("german_credit")


@pytest.fixture
def applicants(german):
    return german.demo_rows.drop(columns=[german.model.target])
