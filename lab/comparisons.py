"""Paired comparisons of a report's points, and whether a winner is really ahead.

Every two points are compared on the cases both have (per-case mean quality) by the test
:func:`lab.stats.paired` chooses, Holm-corrected over all pairs; ``significant`` is
``p_holm < alpha``. :func:`detectable` states the smallest difference the experiment could
have detected (80% power, from the spread of the per-case differences, at ``alpha / m``
for ``m`` comparisons: the level Holm's first step asks of the smallest p-value).

A winner (the report's best, evolution's winners, the optimiser's choice) is chosen on
mean figures; :class:`Lead` says whether it is significantly ahead of the runner-up, so
the text can say "best, but not significantly ahead of X".
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict

from promptlab.lab import stats


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class Comparison(_Model):
    a: str
    b: str
    n: int
    """Paired cases."""
    mean_diff: float
    """Mean of a - b over the paired per-case means."""
    sd_diff: float | None = None
    """Standard deviation of the per-case differences."""
    test: str
    """The test that gave ``p_value``: sign-flip (exact), sign-flip (Monte Carlo), paired
    t or wilcoxon."""
    p_value: float | None
    p_holm: float | None
    p_min: float | None = None
    """The smallest p-value ``test`` can give with ``n`` cases (None: no floor above 0)."""
    significant: bool
    better: str | None
    """The better point when the difference is significant."""
    t_p: float | None
    t_p_holm: float | None
    wilcoxon_p: float | None
    wilcoxon_p_holm: float | None


class Detectable(_Model):
    """The smallest quality difference an experiment could detect (80% power)."""

    difference: float | None
    """None when no difference is detectable (see ``note``)."""
    power: float
    alpha: float
    """The level one comparison must reach: the experiment's alpha over its comparisons."""
    cases: int
    sd: float | None
    """Spread of the per-case differences (root mean square over the comparisons)."""
    note: str


class Lead(_Model):
    """A winner against its runner-up: the Holm-corrected paired comparison of quality."""

    runner_up: str
    mean_diff: float
    """Winner minus runner-up, mean per-case quality."""
    n: int
    test: str
    p_value: float | None
    p_holm: float | None
    p_min: float | None
    significant: bool
    """The winner's quality is significantly higher (``p_holm < alpha``)."""


def compare(
    per_case: Mapping[str, Mapping[str, float]],
    *,
    test: stats.TestChoice = "auto",
    alpha: float = 0.05,
    seed: int = 0,
) -> list[Comparison]:
    """Every pair of points (label -> case -> quality), in order, Holm-corrected."""
    pairs = list(itertools.combinations(per_case, 2))
    tested = [stats.paired(per_case[a], per_case[b], test=test, seed=seed) for a, b in pairs]
    chosen = stats.holm([r.p for r in tested])
    t_holm = stats.holm([r.t_p for r in tested])
    w_holm = stats.holm([r.wilcoxon_p for r in tested])
    out = []
    for (a, b), r, ph, th, wh in zip(pairs, tested, chosen, t_holm, w_holm, strict=True):
        significant = ph is not None and ph < alpha
        out.append(
            Comparison(
                a=a,
                b=b,
                n=r.n,
                mean_diff=r.mean_diff,
                sd_diff=r.sd_diff,
                test=r.test or "-",
                p_value=r.p,
                p_holm=ph,
                p_min=r.p_min,
                significant=significant,
                better=(a if r.mean_diff > 0 else b) if significant else None,
                t_p=r.t_p,
                t_p_holm=th,
                wilcoxon_p=r.wilcoxon_p,
                wilcoxon_p_holm=wh,
            )
        )
    return out


def detectable(comparisons: Sequence[Comparison], alpha: float) -> Detectable | None:
    """The experiment's smallest detectable difference; None with nothing compared."""
    if not comparisons:
        return None
    level = alpha / len(comparisons)
    cases = int(statistics.median(c.n for c in comparisons))
    sds = [c.sd_diff for c in comparisons if c.sd_diff is not None]
    sd = (sum(s * s for s in sds) / len(sds)) ** 0.5 if sds else None
    floor = stats.min_cases(level)
    if cases < floor:
        note = (
            f"none: with {cases} cases the exact test cannot give p < {level:.2g} "
            f"(alpha {alpha:g} over {len(comparisons)} comparisons); it needs {floor} cases"
        )
        return Detectable(
            difference=None, power=stats.POWER, alpha=level, cases=cases, sd=sd, note=note
        )
    if not sd:
        note = "unknown: the per-case differences have no spread to scale by"
        return Detectable(
            difference=None, power=stats.POWER, alpha=level, cases=cases, sd=sd, note=note
        )
    diff = stats.detectable_difference(sd, cases, level)
    note = (
        f"{diff:.3f} in mean quality (80% power, {cases} cases, spread of per-case "
        f"differences {sd:.3f}, alpha {alpha:g} over {len(comparisons)} comparisons)"
    )
    return Detectable(
        difference=diff, power=stats.POWER, alpha=level, cases=cases, sd=sd, note=note
    )


def lead(
    winner: str, runner_up: str | None, comparisons: Sequence[Comparison], alpha: float
) -> Lead | None:
    """The winner's lead over ``runner_up`` from ``comparisons``; None without one."""
    if runner_up is None:
        return None
    for c in comparisons:
        if {c.a, c.b} == {winner, runner_up}:
            sign = 1.0 if c.a == winner else -1.0
            diff = sign * c.mean_diff
            return Lead(
                runner_up=runner_up,
                mean_diff=diff,
                n=c.n,
                test=c.test,
                p_value=c.p_value,
                p_holm=c.p_holm,
                p_min=c.p_min,
                significant=c.p_holm is not None and c.p_holm < alpha and diff > 0,
            )
    return None


def lead_among(
    winner: Mapping[str, float],
    others: Mapping[str, Mapping[str, float]],
    runner_up: str | None,
    *,
    test: stats.TestChoice = "auto",
    alpha: float = 0.05,
) -> Lead | None:
    """The winner (case -> quality) against each of ``others``, Holm-corrected over them;
    the lead over ``runner_up`` (one of ``others``). For a winner picked from many
    candidates, such as the optimiser's trials, where comparing every pair is not needed."""
    if runner_up is None or runner_up not in others:
        return None
    labels = list(others)
    tested = [stats.paired(winner, others[label], test=test) for label in labels]
    adjusted = stats.holm([r.p for r in tested])
    i = labels.index(runner_up)
    r, ph = tested[i], adjusted[i]
    return Lead(
        runner_up=runner_up,
        mean_diff=r.mean_diff,
        n=r.n,
        test=r.test or "-",
        p_value=r.p,
        p_holm=ph,
        p_min=r.p_min,
        significant=ph is not None and ph < alpha and r.mean_diff > 0,
    )


def format_p(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2g}" if value < 0.001 else f"{value:.4f}".rstrip("0").rstrip(".")


def lead_text(lead: Lead | None, alpha: float, *, winner: str = "best") -> str:
    """``significantly ahead of X (...)`` or ``best, but not significantly ahead of X (...)``."""
    if lead is None:
        return f"{winner}: nothing to compare it with"
    how = f"p = {format_p(lead.p_holm)} Holm-corrected, {lead.test}, {lead.n} cases"
    if lead.significant:
        return f"{winner}, significantly ahead of {lead.runner_up} ({how})"
    text = f"{winner}, but not significantly ahead of {lead.runner_up} ({how})"
    if lead.p_min is not None and lead.p_min >= alpha:
        text += f"; with {lead.n} cases no p-value below {format_p(lead.p_min)} is possible"
    return text
