"""Typed errors raised by the service layer.

Pages catch :class:`LucidError` at their boundary and show ``str(error)`` as one friendly message;
nothing below the page ever renders, and no traceback reaches a user.
"""

from __future__ import annotations


class LucidError(Exception):
    """Base class of every error a service raises on purpose. Its message is written for a user."""


class InvalidInputError(LucidError, ValueError):
    """An upload or an argument cannot be used (wrong format, wrong columns, too large, unsafe)."""


class ModelNotFoundError(LucidError, KeyError):
    """A model name that is neither registered nor saved. The message lists the valid names."""

    def __init__(self, name: str, valid: list[str] | tuple[str, ...], kind: str = "model") -> None:
        self.name = name
        self.valid = sorted(valid)
        listed = ", ".join(self.valid) if self.valid else "(none)"
        super().__init__(f"Unknown {kind} '{name}'. Valid names: {listed}.")

    def __str__(self) -> str:  # KeyError would otherwise wrap the message in quotes
        return self.args[0]


class TrainingError(LucidError, RuntimeError):
    """Training cannot start or did not produce a usable model (e.g. one class only)."""


class ExplanationError(LucidError, RuntimeError):
    """An explanation failed a check it must pass (e.g. SHAP additivity)."""


class TrainingCancelled(LucidError):
    """Training was stopped on request before it finished; nothing was saved."""
