"""One evaluator registry for offline runs and sampled live traffic.

:func:`build` turns ``[[evaluators]]`` specs into evaluators; :class:`Panel` runs them
on one output and combines their scores with their weights.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from promptlab.lab.client import ModelClient
from promptlab.lab.evaluators import rules
from promptlab.lab.evaluators.base import EvalContext, EvalResult, Evaluator
from promptlab.lab.evaluators.judge import Judge
from promptlab.lab.evaluators.specs import EvaluatorSpec, JudgeSpec

Factory = Callable[[Any, str, "ModelClient | None"], Evaluator]

REGISTRY: dict[str, Factory] = {
    "exact": lambda s, n, _: rules.Exact(s, n),
    "contains": lambda s, n, _: rules.Contains(s, n),
    "regex": lambda s, n, _: rules.Regex(s, n),
    "json_valid": lambda s, n, _: rules.JsonValid(s, n),
    "json_schema": lambda s, n, _: rules.JsonSchema(s, n),
    "numeric": lambda s, n, _: rules.Numeric(s, n),
    "length": lambda s, n, _: rules.Length(s, n),
    "python": lambda s, n, _: rules.Python(s, n),
    "judge": lambda s, n, c: _judge(s, n, c),
}
"""``kind`` -> factory(spec, name, client)."""


def _judge(spec: JudgeSpec, name: str, client: ModelClient | None) -> Evaluator:
    if client is None:
        raise ValueError("a judge evaluator needs a model client")
    return Judge(spec, name, client)


def names(specs: Sequence[EvaluatorSpec]) -> list[str]:
    """Report names: ``name`` when given, else the kind (``kind_2``... when repeated)."""
    counts = Counter(s.kind for s in specs if s.name is None)
    seen: Counter[str] = Counter()
    out = []
    for s in specs:
        if s.name is not None:
            out.append(s.name)
            continue
        seen[s.kind] += 1
        out.append(s.kind if counts[s.kind] == 1 else f"{s.kind}_{seen[s.kind]}")
    return out


@dataclass(frozen=True, slots=True)
class Verdict:
    """All evaluators' results on one output, and their weighted combination."""

    results: dict[str, EvalResult]
    quality: float | None
    """Weighted mean of the scores; None when any evaluator erred (never a zero)."""

    @property
    def errors(self) -> list[str]:
        return [f"{n}: {r.error}" for n, r in self.results.items() if r.error is not None]

    @property
    def cost_usd(self) -> float:
        return sum(r.cost_usd for r in self.results.values())

    @property
    def calls(self) -> int:
        return sum(r.calls for r in self.results.values())


class Panel:
    """The evaluators of one experiment (or prompt), combined with their weights."""

    def __init__(self, evaluators: Sequence[Evaluator]) -> None:
        self.evaluators = list(evaluators)

    @property
    def calls(self) -> int:
        """Model calls one evaluation makes (judges)."""
        return sum(e.calls for e in self.evaluators)

    async def evaluate(self, ctx: EvalContext) -> Verdict:
        results = await asyncio.gather(*(e.evaluate(ctx) for e in self.evaluators))
        by_name = {e.name: r for e, r in zip(self.evaluators, results, strict=True)}
        return Verdict(by_name, combine(self.evaluators, results))


def combine(evaluators: Sequence[Evaluator], results: Sequence[EvalResult]) -> float | None:
    """Weighted mean of the scores (weights normalised); None if any result is an error."""
    if any(r.score is None for r in results):
        return None
    total = sum(e.weight for e in evaluators)
    if not evaluators or total == 0:
        return None
    return (
        sum(e.weight * float(r.score or 0.0) for e, r in zip(evaluators, results, strict=True))
        / total
    )


def build(specs: Sequence[EvaluatorSpec], client: ModelClient | None = None) -> Panel:
    """Evaluators for ``specs``; a judge needs ``client``."""
    return Panel([REGISTRY[s.kind](s, n, client) for s, n in zip(specs, names(specs), strict=True)])
