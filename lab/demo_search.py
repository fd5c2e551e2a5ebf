"""``promptlab optimize --demos``: which demonstrations, how many, in what order.

The experiment's cases that have an expected answer are shuffled (seeded) and split
three ways: a **pool** the demonstrations are drawn from, a **validation** set the search
scores candidates on, and a **held-out** set nothing in the search has seen. Candidates
are the base variant (no demonstrations) and, for each ``k``, a few random diverse sets
of ``k`` pool cases (no set is all one answer unless the pool is; see
:func:`prompts.demo_pool.diverse_top`); the best set is then tried in other orders. The
winner (best validation quality; ties go to fewer demonstrations) is compared with the
base on the held-out cases with the lab's paired test (the experiment's ``test``,
Holm-corrected like any report), so the figure reported is not the one it was chosen
on. The winner is a variant with ``demos = { select = "fixed", pool = [...] }``: its
demonstrations are part of its version, so the set that runs live is the set tested.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from promptlab.lab.budget import Budget
from promptlab.lab.client import ModelClient
from promptlab.lab.experiment import CaseSpec, Experiment
from promptlab.lab.report import Comparison, PointResult, Report
from promptlab.lab.runner import Point, Publish, run_experiment
from promptlab.prompts import VariantSpec
from promptlab.prompts.demo_pool import DemoPool, diverse_top
from promptlab.prompts.demos import Demo, DemosSpec, InlineDemo

SPLIT = (0.4, 0.3, 0.3)
"""Shares of the cases for the pool, the validation set and the held-out set."""


class DemoSearchError(ValueError):
    """The experiment cannot be searched (too few cases with an expected answer)."""


@dataclass
class DemoSearchOutcome:
    """What the search tried and found."""

    base: str
    pool: int
    validation: int
    held_out: int
    tried: list[tuple[str, int, float | None]] = field(default_factory=list)
    """``(label, k, validation quality)`` of every candidate, in the order tried."""
    winner: VariantSpec | None = None
    """None when no set beat the base on validation."""
    final: Report | None = None
    """The base and the winner on the held-out cases."""
    spend_usd: float = 0.0
    calls: int = 0

    @property
    def comparison(self) -> Comparison | None:
        """The paired test of winner against base on the held-out cases."""
        return self.final.comparisons[0] if self.final and self.final.comparisons else None

    def held_out_point(self, label: str) -> PointResult | None:
        if self.final is None:
            return None
        return next((r for r in self.final.results if r.label == label), None)

    def summary(self) -> str:
        lines = [
            f"cases: {self.pool} pool, {self.validation} validation, {self.held_out} held out; "
            f"{len(self.tried)} candidates, {self.calls} calls, spend ${self.spend_usd:.4f}"
        ]
        for label, k, quality in self.tried:
            shown = "-" if quality is None else f"{quality:.3f}"
            lines.append(f"  {label:<32} k={k:<2} validation quality {shown}")
        if self.winner is None:
            lines.append(f"winner: none (no set beat {self.base} on validation)")
            return "\n".join(lines)
        lines.append(f"winner: {self.winner.name} ({len(_pool(self.winner))} demonstrations)")
        for name in (self.base, self.winner.name):
            point = self.held_out_point(name)
            if point is not None and point.quality_mean is not None:
                ci = point.quality_ci
                interval = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
                lines.append(f"  held out: {name:<28} quality {point.quality_mean:.3f}{interval}")
        c = self.comparison
        if c is not None:
            lines.append(
                f"  paired {c.test} on {c.n} held-out cases: difference {c.mean_diff:+.3f}, "
                f"p {_p(c.p_value)} (Holm {_p(c.p_holm)}), "
                + ("significant" if c.significant else "not significant")
            )
        return "\n".join(lines)

    def offline_check(self) -> dict[str, Any] | None:
        """The held-out comparison in the shape of a registered variant's
        ``offline_check``, so the winner's lineage says what it was tested on: ``passed``
        unless it is significantly worse than the base (None without a winner)."""
        c, winner = self.comparison, self.winner
        if winner is None or c is None:
            return None
        base, won = self.held_out_point(self.base), self.held_out_point(winner.name)
        base_q = base.quality_mean if base is not None else None
        won_q = won.quality_mean if won is not None else None
        diff = won_q - base_q if won_q is not None and base_q is not None else None
        worse = c.significant and c.better == self.base
        shown = "-" if diff is None else f"{diff:+.3f}"
        return {
            "passed": not worse,
            "reason": f"optimize --demos, held out: {c.test} on {c.n} cases, diff {shown}, "
            f"p={_p(c.p_value)} (Holm {_p(c.p_holm)})",
            "champion": self.base,
            "n": c.n,
            "mean_diff": diff,
            "p_value": c.p_value,
            "significant": c.significant,
            "test": c.test,
            "champion_quality": base_q,
            "mutant_quality": won_q,
        }

    def winner_toml(self) -> str:
        """The winner as a ``[[variants]]`` entry to paste into the prompt file."""
        if self.winner is None:
            return ""
        import json

        v = self.winner
        assert v.demos is not None
        demos = ", ".join(
            "{ variables = { "
            + ", ".join(f"{k} = {json.dumps(val)}" for k, val in d.variables.items())
            + f" }}, answer = {json.dumps(d.answer)} }}"
            for d in _pool(v)
        )
        lines = ["[[variants]]", f"name = {json.dumps(v.name)}", f"model = {json.dumps(v.model)}"]
        if v.system is not None:
            lines.append(f"system = {json.dumps(v.system)}")
        lines.append(f"template = {json.dumps(v.template)}")
        lines.append(
            f'demos = {{ k = {v.demos.k}, select = "fixed", format = "{v.demos.format}", '
            f"pool = [{demos}] }}"
        )
        return "\n".join(lines)


async def optimize_demos(
    experiment: Experiment,
    client: ModelClient,
    *,
    variant: str | None = None,
    ks: Sequence[int] = (1, 2, 4, 8),
    sets_per_k: int = 3,
    orders: int = 2,
    seed: int = 0,
    publish: Publish | None = None,
) -> DemoSearchOutcome:
    """Search demonstration sets for ``variant`` (default: the experiment's first), on
    the experiment's first model (the variant's own when it names none)."""
    base = experiment.prompt.variant(variant or experiment.variant_names()[0])
    labelled = [c for c in experiment.cases if c.expected]
    rng = random.Random(seed)
    rng.shuffle(labelled)
    n_pool = int(len(labelled) * SPLIT[0])
    n_val = int(len(labelled) * SPLIT[1])
    pool_cases = labelled[:n_pool]
    val_cases = labelled[n_pool : n_pool + n_val]
    test_cases = labelled[n_pool + n_val :]
    if min(len(pool_cases), len(val_cases), len(test_cases)) < 2:
        raise DemoSearchError(
            f"{len(labelled)} cases with an expected answer: too few to split into a pool, a "
            "validation set and a held-out set (need at least 7)"
        )
    outcome = DemoSearchOutcome(base.name, len(pool_cases), len(val_cases), len(test_cases))
    budget = Budget(experiment.spec.budget.max_calls, experiment.spec.budget.max_usd)
    pool = DemoPool(Demo.build(c.inputs, str(c.expected), id=f"case:{c.id}") for c in pool_cases)
    generator = np.random.default_rng(seed)
    candidates = {base.name: (base, 0)}
    for k in sorted({k for k in ks if 1 <= k <= len(pool)}):
        for j in range(sets_per_k):
            chosen = diverse_top(generator.random(len(pool)), pool.codes, k)
            generator.shuffle(chosen)
            name = f"{base.name}+k{k}-{j}"
            candidates[name] = (_with_demos(base, name, [pool.demos[i] for i in chosen]), k)
    scores = await _validate(experiment, client, candidates, val_cases, budget, publish, outcome)
    best = _best(scores, candidates)
    if best != base.name and orders > 0:
        demos = list(_pool(candidates[best][0]))
        reordered = {best: candidates[best]}
        for j in range(orders):
            shuffled = demos[:]
            random.Random(f"{seed}:order:{j}").shuffle(shuffled)
            name = f"{best}-o{j}"
            reordered[name] = (_with_demos(base, name, shuffled), len(shuffled))
        del reordered[best]
        scores |= await _validate(
            experiment, client, reordered, val_cases, budget, publish, outcome
        )
        candidates |= reordered
        best = _best(scores, candidates)
    if best != base.name:
        chosen_variant = candidates[best][0]
        winner = chosen_variant.model_copy(
            update={"name": f"{base.name}+demos-{chosen_variant.version[:6]}"}
        )
        outcome.winner = winner
        run = await run_experiment(
            experiment,
            client,
            points=[_point(experiment, base), _point(experiment, winner)],
            cases=test_cases,
            publish=publish,
            budget=budget,
        )
        outcome.final = run.report
    outcome.calls, outcome.spend_usd = budget.calls, budget.spent_usd
    return outcome


async def _validate(
    experiment: Experiment,
    client: ModelClient,
    candidates: dict[str, tuple[VariantSpec, int]],
    cases: list[CaseSpec],
    budget: Budget,
    publish: Publish | None,
    outcome: DemoSearchOutcome,
) -> dict[str, float | None]:
    run = await run_experiment(
        experiment,
        client,
        points=[_point(experiment, v) for v, _ in candidates.values()],
        cases=cases,
        publish=publish,
        budget=budget,
    )
    scores: dict[str, float | None] = {}
    for name, (_, k) in candidates.items():
        result = next((r for r in run.report.results if r.label == name), None)
        scores[name] = result.quality_mean if result is not None else None
        outcome.tried.append((name, k, scores[name]))
    return scores


def _best(scores: dict[str, float | None], candidates: dict[str, Any]) -> str:
    """Highest validation quality; ties go to fewer demonstrations, then the earlier."""
    order = list(candidates)
    scored = [
        (q, -candidates[n][1], -order.index(n), n) for n, q in scores.items() if q is not None
    ]
    return max(scored)[3] if scored else order[0]


def _point(experiment: Experiment, variant: VariantSpec) -> Point:
    """The variant on the experiment's first model (its own without ``models``)."""
    model = experiment.spec.models[0] if experiment.spec.models else variant.model
    return Point(variant, model, {**variant.params, **experiment.spec.params}, variant.name)


def _with_demos(
    base: VariantSpec, name: str, demos: Sequence[Demo] | Sequence[InlineDemo]
) -> VariantSpec:
    inline = tuple(InlineDemo(variables=dict(d.variables), answer=d.answer) for d in demos)
    spec = DemosSpec(k=len(inline), select="fixed", pool=inline, format="turns")
    return base.model_copy(
        update={
            "name": name, "champion": False, "demos": spec, "parent": base.name, "origin": "demos",
            "parents": (base.name,), "strategy": "demos-search",
        }
    )  # fmt: skip


def _pool(variant: VariantSpec) -> tuple[InlineDemo, ...]:
    spec = variant.demos
    return spec.pool if spec is not None and not isinstance(spec.pool, str) else ()


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"
