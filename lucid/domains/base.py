"""The contract every domain fills in: :class:`Domain` (what the CLI, the batch export, the page
catalogue and ``build_defaults`` need of a domain), :class:`BatchJob` (scoring partition by
partition, here or on a Dask cluster), :class:`ModelService` (the models of a domain: store, names,
build-on-first-use, loading once per process) and :class:`ModelCard` (what a page shows about a model).

A domain is one package under ``lucid/domains/`` with a ``domain.py`` that subclasses
:class:`Domain`, and one line in :data:`lucid.domains.DOMAINS`. See docs/architecture.md.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, TypeVar

import pandas as pd

from lucid.batch.engine import RunStats
from lucid.core.errors import InvalidInputError, ModelNotFoundError
from lucid.core.progress import Progress, ShouldStop
from lucid.core.registry import ModelRegistry
from lucid.core.store import ModelStore, StoredModel, validate_name

Command = Literal["train", "score", "evaluate"]
COMMANDS: tuple[Command, ...] = ("train", "score", "evaluate")
#: What a domain reads: a table of rows (applicants, texts, interactions) or image files.
InputKind = Literal["table", "images"]


# ------------------------------------------------------------------------------------------------
# Command-line requests: plain values, no argparse below the CLI
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Option:
    """One option a domain adds to some of its commands (``--threshold``, ``--text-col``, ...).

    ``key`` is the option's name in :attr:`Request.options` (``--text-col`` -> ``text_col``).
    """

    flag: str
    help: str
    commands: tuple[Command, ...] = COMMANDS
    default: Any = None
    type: type | None = None
    choices: tuple[str, ...] | None = None
    flag_only: bool = False  # a switch: present means true

    @property
    def key(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class Request:
    """One command of the CLI as plain values.

    Attributes:
        command: ``train``, ``score`` or ``evaluate``.
        data: the input path (a file, or for image domains a file, a folder or a zip).
        model: the model to use (``None``: the domain's default).
        target: the label column (train, evaluate).
        name: the name to save a trained model under (train).
        explain: add explanations to a score.
        save_anyway: save a trained model even when it does not pass the quality gate.
        options: the domain's own options by :attr:`Option.key`.
    """

    command: Command
    data: str
    model: str | None = None
    target: str | None = None
    name: str | None = None
    explain: bool = False
    save_anyway: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)

    def option(self, key: str, default: Any = None) -> Any:
        value = self.options.get(key)
        return default if value is None else value


# ------------------------------------------------------------------------------------------------
# Batch scoring
# ------------------------------------------------------------------------------------------------
class BatchJob(ABC):
    """How a domain scores many rows: the rows are built once (:meth:`rows`), scored partition by
    partition (:meth:`score_partition`, in this process or on Dask workers: the same code either way)
    and the partitions' output is turned into the table a user downloads (:meth:`finish`).

    Implementations hold no state (workers receive the job by pickling), and load their models
    through the process's shared service, so each worker loads a model once.
    """

    #: Rows per partition: expensive rows (images, explained texts) make small partitions.
    partition_rows: ClassVar[int] = 2_000

    @abstractmethod
    def rows(self, request: Request) -> pd.DataFrame:
        """The rows to score for a CLI ``score``, read in the calling process.

        The model is looked up here, so an unknown name fails before any work is sent to workers.
        """

    @abstractmethod
    def score_partition(
        self, frame: pd.DataFrame, *, model: str | None, explain: bool, options: Mapping[str, Any]
    ) -> pd.DataFrame:
        """Score (and with ``explain`` explain) one partition of :meth:`rows`."""

    def finish(
        self,
        frame: pd.DataFrame,
        scored: pd.DataFrame,
        *,
        model: str | None,
        options: Mapping[str, Any],
        stats: RunStats,
    ) -> tuple[pd.DataFrame, dict[str, Any]]:
        """The table to write from the input rows and the partitions' output, and the summary's keys."""
        return scored, {}


# ------------------------------------------------------------------------------------------------
# The domain
# ------------------------------------------------------------------------------------------------
class Domain(ABC):
    """A domain of Lucid: its page, its models and its commands.

    Subclasses set the class attributes and implement :meth:`run` (train / evaluate),
    :meth:`service` and :attr:`batch`; everything else (the CLI's parser, the partitioned score,
    the page list, building defaults) is shared machinery that reads these.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    icon: ClassVar[str]
    audience: ClassVar[str]
    summary: ClassVar[str]
    page: ClassVar[str]  # the page file, relative to the repository root
    input_kind: ClassVar[InputKind]
    default_model: ClassVar[str]
    options: ClassVar[tuple[Option, ...]] = ()
    batch: ClassVar[BatchJob]

    @abstractmethod
    def service(self, store: ModelStore | None = None) -> ModelService[Any]:
        """The process's shared model service of this domain (for ``store``, default the model store)."""

    @abstractmethod
    def run(self, request: Request, progress: Progress = None) -> dict[str, Any]:
        """``train`` or ``evaluate``: the summary or the held-out metrics, JSON-serialisable."""

    def ensure_defaults(self, progress: Progress = None, store: ModelStore | None = None) -> list[str]:
        """Build every default model that is missing or from an older recipe; returns the names built."""
        return self.service(store).ensure_defaults(progress)

    def options_for(self, command: Command) -> list[Option]:
        return [o for o in self.options if command in o.commands]


# ------------------------------------------------------------------------------------------------
# Model cards
# ------------------------------------------------------------------------------------------------
@dataclass
class ModelCard:
    """What a page shows about a model: where it came from, its licence, its data and its
    held-out metrics, and any further facts of the domain (``details``, heading -> text, number,
    mapping or DataFrame, in display order).
    """

    model: str
    source: str
    licence: str
    data: str
    metrics: pd.DataFrame | Mapping[str, Any] | str
    details: dict[str, Any] = field(default_factory=dict)
    caveats: list[str] = field(default_factory=list)

    def sections(self) -> dict[str, Any]:
        """Heading -> value in display order (what the model-card widget and the reports render)."""
        out: dict[str, Any] = {
            "Model": self.model,
            "Weights": self.source,
            "Licence": self.licence,
            "Training and test data": self.data,
            "Held-out test metrics": self.metrics,
        }
        out.update(self.details)
        if self.caveats:
            out["Limits"] = " ".join(self.caveats)
        return out


# ------------------------------------------------------------------------------------------------
# Model services
# ------------------------------------------------------------------------------------------------
M = TypeVar("M")


class ModelService(ABC, Generic[M]):
    """The models of one domain: registered defaults and the user's saved models.

    Owns the model store, the one name rule, the one version check (a default is current when its
    metadata's ``recipe_version`` equals :attr:`recipe_version`), listing, and loading: each model is
    read once per service (one service per process and store, see
    :func:`lucid.core.store.shared_service`); a default that is missing or stale is built on first
    use; loading holds only that name's lock, so other sessions keep working meanwhile.

    Subclasses set :attr:`domain`, :attr:`registry` and :attr:`recipe_version` and implement
    :meth:`_build_default` (write a default into the store), :meth:`_read` (a stored model into
    memory) and :meth:`card`.

    Example:
        >>> service = shared_service(FinanceService)
        >>> service.model_names()
        ['german_credit', 'give_me_some_credit', 'my-model']
        >>> bundle = service.load("german_credit", progress=print)
    """

    domain: ClassVar[str]
    registry: ClassVar[ModelRegistry]
    recipe_version: ClassVar[int | str]

    def __init__(self, store: ModelStore | None = None) -> None:
        self.store = store or ModelStore()
        self._lock = threading.RLock()
        self._loaded: dict[str, M] = {}
        self._loading: dict[str, threading.Lock] = {}

    # -- names ---------------------------------------------------------------------------------
    def is_default(self, name: str) -> bool:
        return name in self.registry

    def saved_names(self) -> list[str]:
        """The user's saved models, newest first."""
        return [m.name for m in self.store.list(self.domain) if m.name not in self.registry]

    def model_names(self) -> list[str]:
        """Registered defaults first (registry order), then saved models (newest first)."""
        return self.registry.names() + self.saved_names()

    def check_name(self, name: str) -> str:
        """``name`` if it is a default or a saved model; else :class:`ModelNotFoundError` (lists them)."""
        if self.is_default(name):
            return name
        try:
            clean = validate_name(name)
        except InvalidInputError:
            clean = None
        if clean is None or not self.store.exists(self.domain, clean):
            raise ModelNotFoundError(name, self.model_names(), kind=f"{self.domain} model")
        return clean

    # -- versions ------------------------------------------------------------------------------
    def is_built(self, name: str) -> bool:
        """True when ``name`` can be loaded without building it first."""
        with self._lock:
            if name in self._loaded:
                return True
        if self.is_default(name):
            return self._default_is_current(name)
        return self.store.exists(self.domain, name)

    def _default_is_current(self, name: str) -> bool:
        """A default is current when stored by this recipe version (override for packaged weights)."""
        if not self.store.exists(self.domain, name):
            return False
        return self.store.load(self.domain, name).metadata.get("recipe_version") == self.recipe_version

    def stored(self, name: str) -> StoredModel:
        """The store entry of a model (a default must be built)."""
        name = self.check_name(name)
        if not self.store.exists(self.domain, name):
            raise InvalidInputError(f"The default model '{name}' has not been built yet.")
        return self.store.load(self.domain, name)

    # -- loading -------------------------------------------------------------------------------
    def load(self, name: str, *, progress: Progress = None, should_stop: ShouldStop = None) -> M:
        """The model called ``name``, loaded once; a missing or stale default is built first.

        Raises:
            ModelNotFoundError: neither a default nor a saved model; the message lists the names.
        """
        with self._lock:
            if name in self._loaded:
                return self._loaded[name]
            loading = self._loading.setdefault(name, threading.Lock())
        with loading:
            with self._lock:
                if name in self._loaded:  # read by another session while this one waited
                    return self._loaded[name]
            name = self.check_name(name)
            if self.is_default(name) and not self._default_is_current(name):
                self._build_default(name, progress=progress, should_stop=should_stop)
            model = self._read(name, progress=progress)
            with self._lock:
                self._loaded[name] = model
            return model

    def remember(self, name: str, model: M) -> None:
        """Keep a model just trained or built, so the next :meth:`load` does not read it again."""
        with self._lock:
            self._loaded[name] = model

    def forget(self, name: str) -> None:
        """Drop a loaded model (after it was overwritten or deleted)."""
        with self._lock:
            self._loaded.pop(name, None)

    def delete(self, name: str) -> None:
        """Delete a saved model; defaults cannot be deleted."""
        if self.is_default(name):
            raise InvalidInputError(f"'{name}' is a built-in model and cannot be deleted.")
        self.store.delete(self.domain, self.check_name(name))
        self.forget(name)

    def rename(self, old: str, new: str) -> StoredModel:
        """Give a saved model another name; built-in models keep theirs, and their names stay theirs."""
        if self.is_default(old):
            raise InvalidInputError(f"'{old}' is a built-in model and cannot be renamed.")
        if self.is_default((new or "").strip()):
            raise InvalidInputError(f"'{new.strip()}' is the name of a built-in model; choose another name.")
        stored = self.store.rename(self.domain, self.check_name(old), new)
        self.forget(old)
        return stored

    def describe(self, stored: StoredModel) -> dict[str, str]:
        """What the model list shows of a saved model: the data it learnt from and its headline
        held-out figure (from its metadata; a domain may say more)."""
        meta = stored.metadata
        data = next(
            (str(meta[k]) for k in ("data", "trained_on", "data_name", "training_data") if meta.get(k)), ""
        )
        gate = meta.get("quality_gate")
        if isinstance(gate, Mapping):
            figure = f"{gate['metric']} {gate['model']:.3f} (baseline {gate['baseline']:.3f})"
        else:
            metrics = meta.get("metrics")
            numbers = (
                [(k, v) for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)]
                if isinstance(metrics, Mapping)
                else []
            )
            figure = ", ".join(f"{k} {v:.3f}" for k, v in numbers[:2])
        return {"Data": data, "Held-out result": figure}

    def saved_models_table(self) -> pd.DataFrame:
        """The saved models, newest first: name, when saved, data, headline figure."""
        rows = []
        for stored in self.store.list(self.domain):
            if stored.name in self.registry:
                continue
            created = str(stored.metadata.get("created", ""))[:16].replace("T", " ")
            rows.append({"Name": stored.name, "Saved (UTC)": created, **self.describe(stored)})
        return pd.DataFrame(rows, columns=["Name", "Saved (UTC)", "Data", "Held-out result"])

    def ensure_defaults(self, progress: Progress = None) -> list[str]:
        """Build every default that is missing or stale; returns the names built now."""
        built = []
        for name in self.registry.names():
            if not self._default_is_current(name):
                prefix = f"{name}: "
                part = (lambda f, m, p=prefix: progress(f, p + m)) if progress else None
                self._build_default(name, progress=part, should_stop=None)
                built.append(name)
        return built

    # -- what each domain says -----------------------------------------------------------------
    @abstractmethod
    def _build_default(self, name: str, *, progress: Progress, should_stop: ShouldStop) -> None:
        """Build the registered default ``name`` into the store (train it or convert its weights)."""

    @abstractmethod
    def _read(self, name: str, *, progress: Progress = None) -> M:
        """Read the stored (or packaged) model ``name`` into memory."""

    @abstractmethod
    def card(self, name: str) -> ModelCard:
        """The model card of ``name``."""
