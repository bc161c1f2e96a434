"""Credit-risk inputs: the binary target, and uploads matched against a model's features."""

import numpy as np
import pandas as pd
import pytest

from lucid.core.errors import InvalidInputError
from lucid.domains.finance.data import prepare_target


def test_target_must_be_binary_with_both_classes():
    with pytest.raises(InvalidInputError, match="3 different values"):
        prepare_target(pd.Series(["a", "b", "c"], name="t"))
    with pytest.raises(InvalidInputError, match="only one value"):
        prepare_target(pd.Series([0, 0, 0], name="t"))
    y, pos, neg = prepare_target(pd.Series(["good", "bad", "good"], name="t"))
    assert (pos, neg) == ("bad", "good") and y.tolist() == [0, 1, 0]
    y, pos, _ = prepare_target(pd.Series([1.0, 0.0, 0.0], name="t"))
    assert pos == "1" and y.tolist() == [1, 0, 0]


def test_missing_columns_are_named_and_extras_listed(service, german, applicants):
    with pytest.raises(InvalidInputError, match="purpose, credit_amount"):
        service.score(german, applicants.drop(columns=["purpose", "credit_amount"]))
    scored = service.score(german, applicants.assign(customer_id=1, branch="x"))
    assert scored.validation.extra_columns == ["customer_id", "branch"]
    assert "customer_id, branch" in scored.validation.messages()[0]


def test_text_in_numeric_columns_and_unknown_categories_are_counted(service, german, applicants):
    bad = applicants.head(10).copy().astype({"credit_amount": object})
    bad.loc[0:2, "credit_amount"] = "lots"
    bad.loc[5, "purpose"] = "spaceship"
    bad.loc[6, "age_in_years"] = None
    scored = service.score(german, bad)
    assert scored.validation.coerced == {"credit_amount": 3}
    assert scored.validation.unknown_categories == {"purpose": 1}
    assert np.isnan(scored.frame.loc[0, "credit_amount"]) and np.isfinite(scored.pd).all()
    assert any("'credit_amount': 3 value(s)" in m for m in scored.validation.messages())


def test_all_missing_column_is_reported_when_scoring(service, german, applicants):
    scored = service.score(german, applicants.head(5).assign(credit_amount=np.nan))
    assert scored.validation.all_missing == ["credit_amount"]


def test_duplicated_columns_and_row_limit_are_refused(service, german):
    with pytest.raises(InvalidInputError, match="more than once"):
        service.read_applicants(b"age,age\n1,2\n", "d.csv")
    frame = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(InvalidInputError, match="more than once"):
        service.score(german, frame)
    rows = "x\n" + "\n".join(str(i) for i in range(101))
    with pytest.raises(InvalidInputError, match="limit is 100"):
        service.read_applicants(rows.encode(), "big.csv", max_rows=100)
