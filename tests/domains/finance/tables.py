"""Small synthetic credit tables and a quick training recipe for the credit-risk tests."""

import numpy as np
import pandas as pd

from lucid.domains.finance.model import GBMRecipe

SMALL = GBMRecipe(n_estimators=60, early_stopping_rounds=15)


def synthetic(n=600, seed=0):
    """Applicants whose risk trees learn and a logistic regression cannot: it rises at both ends of the
    income range and with two or more late payments, less so in the east, so a model trained on them
    passes the quality gate (its held-out AUC beats the logistic baseline and chance)."""
    rng = np.random.default_rng(seed)
    income = rng.normal(3000, 800, n)
    late = rng.poisson(0.5, n)
    region = rng.choice(["north", "south", "east"], n)
    many_late = late >= 2
    east = region == "east"
    logit = -1.5 + 2.5 * (np.abs(income - 3000) > 900) + 1.2 * many_late - 1.0 * many_late * east + 0.8 * east
    default = rng.random(n) < 1 / (1 + np.exp(-logit))
    income[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame({"income": income, "late": late, "region": region, "default": default.astype(int)})


def shuffled(n=600, seed=0):
    """The same applicants with their outcomes shuffled against the features: nothing to learn."""
    df = synthetic(n, seed)
    df["default"] = np.random.default_rng(seed + 1).permutation(df["default"].to_numpy())
    return df
