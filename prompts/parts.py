"""The smaller tables of a prompt file: ``[routing]``, ``[constraints]``, ``[[examples]]``.

Each validates what it can see on its own; rules that relate a table to the variants
(a weight per variant, allowed models) are the prompt's (:mod:`prompts.spec`).
``[reward]`` lives in :mod:`prompts.reward` with the function that applies it.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from pydantic import AliasChoices, Field, model_validator

from events.kinds import RoutingMode
from prompts.base import SpecModel
from prompts.errors import SpecError

__all__ = ["ConstraintsSpec", "ExampleSpec", "RoutingSpec"]


class RoutingSpec(SpecModel):
    """``[routing]``: how traffic is split between variants."""

    strategy: RoutingMode = "thompson"
    exploration_cap: float = Field(default=0.2, ge=0, le=1)
    """At most this share of traffic goes to challengers."""
    weights: dict[str, float] = Field(default_factory=dict)
    """``variant -> weight`` for ``strategy = "fixed"`` (normalised; need not sum to 1).
    Every active variant needs a weight (0 is allowed, and means no traffic)."""
    sticky: bool = True
    """A subject (user, session) keeps the variant it first got."""

    @model_validator(mode="after")
    def _check_weights(self) -> RoutingSpec:
        problems = [
            (f"weights.{name}", f"{weight} is negative")
            for name, weight in self.weights.items()
            if weight < 0
        ]
        if self.strategy == "fixed" and not any(w > 0 for w in self.weights.values()):
            problems.append(("weights", "strategy 'fixed' needs a positive weight per variant"))
        if self.strategy != "fixed" and self.weights:
            problems.append(("weights", "weights apply only to strategy 'fixed'"))
        if problems:
            raise SpecError(problems)
        return self


class ConstraintsSpec(SpecModel):
    """``[constraints]``: limits every variant must respect (mutations included)."""

    allowed_models: list[str] = Field(default_factory=list)
    """Models variants may use: exact names or shell patterns (``openai/*``); empty: any."""
    max_tokens: int | None = Field(default=None, ge=1)
    """Ceiling on a variant's ``params.max_tokens``."""

    def allows_model(self, model: str) -> bool:
        """Whether ``model`` satisfies :attr:`allowed_models`."""
        return not self.allowed_models or any(
            fnmatch.fnmatchcase(model, pattern) for pattern in self.allowed_models
        )


class ExampleSpec(SpecModel):
    """``[[examples]]``: an input with the output wanted; experiments reuse it as a case."""

    name: str
    variables: dict[str, Any] = Field(default_factory=dict)
    expected: str | None = Field(
        default=None, validation_alias=AliasChoices("expected", "expected_output")
    )
    """Output wanted (key ``expected_output`` also works); None: judge without reference."""
