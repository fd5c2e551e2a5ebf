"""How many cases and repeats an experiment needs to detect a difference, before any call.

``promptlab experiment plan FILE --difference 0.05`` answers from the experiment file
alone (it calls no model):

* the level one comparison must reach is the experiment's ``alpha`` over its number of
  comparisons (every pair of points), the level Holm's first step asks of the smallest
  p-value; the exact sign-flip test needs at least :func:`lab.stats.min_cases` cases to
  reach it at all;
* the spread of the per-case differences comes from ``--sd``, else from the experiment's
  saved trials (a pilot run), else it is assumed to be ``sqrt(0.5) = 0.71``: the largest
  spread of the difference of two scores in [0, 1] that are not negatively correlated.
  The plan says which;
* repeats average out the repeat-to-repeat noise of a case, not the differences between
  cases: with trials of two or more repeats the spread is split into the two (the
  per-case difference of two points at ``r`` repeats has variance ``tau**2 + 2 sigma**2
  / r``, the noise share capped at the measured variance) and each number of repeats gets
  its own number of cases. Without that split,
  repeats are assumed not to help.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from promptlab.lab import stats
from promptlab.lab.experiment import Experiment
from promptlab.lab.results import Trial

DEFAULT_SD = math.sqrt(0.5)
REPEATS = (1, 2, 3, 5, 10)
"""The numbers of repeats a plan lists (plus the experiment's own)."""


@dataclass(frozen=True)
class Spread:
    """The spread of per-case quality differences between two points."""

    sd: float
    """Standard deviation of the per-case differences at ``repeats`` repeats."""
    repeats: int
    within_sd: float | None
    """Repeat-to-repeat standard deviation of one trial's quality (None: unknown)."""
    source: str
    """Where ``sd`` came from: ``--sd``, a results file, or ``assumed``."""

    def at(self, repeats: int) -> float:
        """The spread of per-case differences with ``repeats`` repeats a case."""
        if self.within_sd is None:
            return self.sd
        # The repeat noise's share at the measured repeats, at most all of the spread (a
        # small sample can measure less spread than its noise alone would give).
        noise = min(self.sd**2, 2 * self.within_sd**2 / self.repeats)
        return math.sqrt(self.sd**2 - noise + noise * self.repeats / repeats)


def spread_from_trials(trials: Sequence[Trial], source: str) -> Spread | None:
    """The spread measured in finished trials; None when no two points share two cases."""
    cells: dict[tuple[str, str], list[float]] = defaultdict(list)
    for t in trials:
        if t.quality is not None:
            cells[(t.point, t.case)].append(float(t.quality))
    per_point: dict[str, dict[str, float]] = defaultdict(dict)
    for (point, case), values in cells.items():
        per_point[point][case] = sum(values) / len(values)
    variances = []
    for a, b in itertools.combinations(sorted(per_point), 2):
        common = sorted(set(per_point[a]) & set(per_point[b]))
        if len(common) >= 2:
            variances.append(
                statistics.variance([per_point[a][c] - per_point[b][c] for c in common])
            )
    if not variances:
        return None
    repeats = round(statistics.median(len(v) for v in cells.values()))
    within = None
    dof = sum(len(v) - 1 for v in cells.values())
    if repeats >= 2 and dof > 0:
        squares = sum(sum((x - sum(v) / len(v)) ** 2 for x in v) for v in cells.values())
        within = math.sqrt(squares / dof)
    cases = len({case for _, case in cells})
    return Spread(
        sd=math.sqrt(sum(variances) / len(variances)),
        repeats=max(1, repeats),
        within_sd=within,
        source=f"measured in {source}: {cases} cases, {repeats} repeats",
    )


@dataclass(frozen=True)
class PlanRow:
    repeats: int
    cases: int
    calls: int
    """Model calls, judge calls included."""
    sd: float


@dataclass(frozen=True)
class Plan:
    """What detecting ``difference`` takes; :meth:`lines` is the text the CLI prints."""

    experiment: str
    difference: float
    power: float
    alpha: float
    comparisons: int
    level: float
    """``alpha / comparisons``: what one comparison must reach."""
    min_cases: int
    """Fewest cases with which the exact test can reach ``level`` at all."""
    points: int
    calls_per_trial: int
    spread: Spread
    rows: list[PlanRow] = field(default_factory=list)
    cases_now: int = 0
    repeats_now: int = 1
    detectable_now: float | None = None
    """The smallest difference the experiment as written detects (None: none)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def head(self) -> list[str]:
        """What the plan asks and assumes, before its table."""
        s = self.spread
        return [
            f"plan for {self.experiment}: detect a difference of {self.difference:g} in mean "
            f"quality with {self.power:.0%} power",
            f"  {self.points} points, {self.comparisons} comparisons: each must reach "
            f"p < {self.level:.3g} (alpha {self.alpha:g}, Holm); the exact test needs at least "
            f"{self.min_cases} cases for that",
            f"  spread of per-case differences {s.sd:.3f} at {s.repeats} repeats "
            f"({s.source})"
            + (
                f", repeat-to-repeat spread {s.within_sd:.3f}"
                if s.within_sd is not None
                else "; repeats assumed not to help (no repeat-to-repeat spread measured)"
            ),
        ]

    TABLE = ("repeats", "cases", "calls")
    """The headings of :meth:`table` (one row per number of repeats)."""

    def table(self) -> list[tuple[str, str, str]]:
        """Cases and calls each number of repeats needs, as table cells."""
        return [(str(r.repeats), str(r.cases), f"{r.calls:,}") for r in self.rows]

    def tail(self) -> str:
        """What the experiment as written detects."""
        detect = (
            f"{self.detectable_now:.3f}"
            if self.detectable_now is not None
            else f"none (needs at least {self.min_cases} cases)"
        )
        return (
            f"  as written ({self.cases_now} cases, {self.repeats_now} repeats) it detects "
            f"differences of {detect}"
        )


def plan(
    experiment: Experiment,
    difference: float,
    *,
    power: float = stats.POWER,
    sd: float | None = None,
    trials: Sequence[Trial] = (),
    trials_source: str = "saved trials",
) -> Plan:
    """The cases and repeats ``experiment`` needs to detect ``difference`` (module docstring).

    Raises ValueError for a difference outside (0, 1] or a spread that is not positive.
    """
    if not 0 < difference <= 1:
        raise ValueError("the difference must be in (0, 1]")
    if sd is not None and not sd > 0:
        raise ValueError("the spread (--sd) must be positive")
    spec = experiment.spec
    points = len(experiment.variant_names()) * max(1, len(spec.models or []))
    comparisons = max(1, points * (points - 1) // 2)
    level = spec.alpha / comparisons
    measured = spread_from_trials(trials, trials_source) if sd is None else None
    spread = (
        Spread(sd, spec.repeats, None, "given by --sd")
        if sd is not None
        else measured
        or Spread(
            DEFAULT_SD,
            spec.repeats,
            None,
            "assumed: no trials to measure it from; pass --sd or run a few cases first",
        )
    )
    per_trial = 1 + sum(1 for e in spec.evaluators if e.kind == "judge")
    rows = []
    for repeats in sorted({*REPEATS, spec.repeats}):
        if spread.within_sd is None and repeats != spec.repeats:
            continue  # repeats change nothing we can estimate: list the file's only
        s = spread.at(repeats)
        cases = stats.cases_needed(difference, s, level, power)
        rows.append(PlanRow(repeats, cases, cases * repeats * points * per_trial, s))
    cases_now = len(experiment.cases)
    return Plan(
        experiment=experiment.id,
        difference=difference,
        power=power,
        alpha=spec.alpha,
        comparisons=comparisons,
        level=level,
        min_cases=stats.min_cases(level),
        points=points,
        calls_per_trial=per_trial,
        spread=spread,
        rows=rows,
        cases_now=cases_now,
        repeats_now=spec.repeats,
        detectable_now=stats.detectable_difference(
            spread.at(spec.repeats), cases_now, level, power
        ),
    )
