"""What an evaluator sees and what it returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class EvalContext:
    """One output to score, with the case it answered."""

    output: str
    expected: str | None = None
    inputs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EvalResult:
    """A score in 0..1 with a short reason, or an evaluation error (``score`` None).

    An evaluation error (a judge answer that cannot be parsed, a failed judge call, a
    Python evaluator that raised) is reported as such and never counted as a zero.
    """

    score: float | None
    reason: str = ""
    error: str | None = None
    cost_usd: float = 0.0
    """What evaluating cost (the judge's own call)."""
    calls: int = 0
    """Model calls the evaluation made."""

    @classmethod
    def failed(cls, error: str, *, cost_usd: float = 0.0, calls: int = 0) -> EvalResult:
        return cls(None, "", error, cost_usd, calls)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"score": self.score, "reason": self.reason}
        if self.error is not None:
            out["error"] = self.error
        if self.cost_usd:
            out["cost_usd"] = self.cost_usd
        if self.calls:
            out["calls"] = self.calls
        return out


class Evaluator(Protocol):
    name: str
    weight: float
    calls: int
    """Model calls one evaluation makes (the budget reserves them before a trial)."""

    async def evaluate(self, ctx: EvalContext) -> EvalResult: ...
