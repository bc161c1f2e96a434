"""Small synthetic credit tables and a quick training recipe for the credit-risk tests."""

import numpy as np
import pandas as pd

from lucid.domains.finance.model import GBMRecipe

SMALL = GBMRecipe(n_estimators=60, early_stopping_rounds=15)


def synthetic(n=600, seed=0):
    rng = np.random.default_rng(seed)
    income = rng.normal(3000, 800, n)
    late = rng.poisson(0.5, n)
    region = rng.choice(["north", "south", "east"], n)
    logit = -2 + 1.2 * late - 0.001 * (income - 3000) + (region == "east") * 0.8
    default = rng.random(n) < 1 / (1 + np.exp(-logit))
    income[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame({"income": income, "late": late, "region": region, "default": default.astype(int)})
