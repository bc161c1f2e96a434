"""A registry of named models per domain, in the spirit of timm's ``register_model``.

Each entry says how to build the model, where its weights come from, its licence and the data
it was trained or tested on. Building is a separate, explicit call (cheap constructors, loading
in one place). Unknown names raise :class:`ModelNotFoundError` listing the valid names.

Example:
    >>> registry = ModelRegistry("finance")
    >>> @registry.register(title="German credit", source="...", licence="MIT", data="...")
    ... def german_credit(**kwargs): ...
    >>> registry.names()
    ['german_credit']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lucid.core.errors import ModelNotFoundError


@dataclass(frozen=True)
class ModelSpec:
    """What a model card needs to know before the model is built."""

    name: str
    domain: str
    title: str
    build: Callable[..., Any]
    source: str
    licence: str
    data: str
    description: str = ""
    labels: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


class ModelRegistry:
    """Named models of one domain."""

    def __init__(self, domain: str) -> None:
        self.domain = domain
        self._specs: dict[str, ModelSpec] = {}

    def register(
        self, *, name: str | None = None, **card: Any
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: register a builder function under ``name`` (default: the function's name)."""

        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            key = name or fn.__name__
            if key in self._specs:
                raise ValueError(f"{self.domain} model '{key}' is registered twice")
            self._specs[key] = ModelSpec(name=key, domain=self.domain, build=fn, **card)
            return fn

        return decorator

    def names(self) -> list[str]:
        return list(self._specs)

    def get(self, name: str) -> ModelSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise ModelNotFoundError(name, self.names(), kind=f"{self.domain} model") from None

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def create(self, name: str, **kwargs: Any) -> Any:
        """Build a registered model (loads its weights)."""
        return self.get(name).build(**kwargs)
