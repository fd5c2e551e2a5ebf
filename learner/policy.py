"""The promotion, rollback and retirement policy: state + config + seeded rng -> decision.

:func:`decide` is pure: no I/O, no clock; its only randomness is the Monte Carlo of
P(beats)/P(best) drawn from the ``numpy.random.Generator`` the caller passes (the
learner seeds it from the stream sequence), so a replay decides identically.

Rules (thresholds from :class:`prompts.config.PromotionConfig`)
----------------------------------------------------------------
**Promote** a challenger ``c`` over the champion ``h`` when all of these hold:

1. both have ``n >= min_samples`` rewarded executions;
2. the hard constraints hold for ``c`` (when set): mean cost per call
   ``<= max_cost_usd``, p95 latency ``<= max_p95_latency_ms``, error rate
   ``<= max_error_rate``. An unknown figure (no data) counts as a breach: a promotion
   must be shown to respect the constraint;
3. ``lift = mean_c - mean_h >= min_lift``;
4. the always-valid mSPRT (:mod:`learner.sequential`) rejects ``mu_c = mu_h`` at
   ``alpha / K`` with a positive lift, ``K`` the number of challengers being compared
   with the champion (Bonferroni: with several challengers the chance that *any* of
   them is falsely promoted stays <= alpha);
5. ``P(theta_c > theta_h) >= threshold`` under the Beta posteriors (Monte Carlo).

The sequential test is what makes checking after every event safe; the posterior
probability is what users read; the lift and constraints make a promotion worth it.
When several challengers qualify, the one with the highest mean is promoted.
No promotion while exploration is paused or while a probation is running.

**Probation and rollback.** After a promotion the new champion is watched for
``probation_samples`` rewarded executions. It is compared with the previous champion's
record *frozen at the promotion* (not the old champion's ongoing data: after the
promotion the old champion only gets leftover Thompson traffic, little and adaptively
chosen, while its frozen record is large and is what the promotion was judged
against). Only the new champion's data *since the promotion* counts, so the lucky
streak that got it promoted (the winner's curse) cannot hide a regression. It is
rolled back when

* the mSPRT of ``since - baseline`` rejects at ``rollback_alpha`` with a negative lift
  (a significant regression), or
* its error rate since the promotion significantly exceeds ``max_error_rate``: an
  always-valid one-sided test of ``H0: error rate <= max_error_rate`` (Beta(1, 1)
  mixture over rates above the limit; see :func:`error_rate_breach`) rejects at
  ``rollback_alpha``. A point estimate would roll back on the first unlucky error.

Rollback checks run even while exploration is paused.

**Retire** a challenger whose ``P(best)`` among the active arms is below
``retire_below`` once it has ``min_samples``. The previous champion is not retired
while its successor is on probation (it is the rollback target).

Cost of the Monte Carlo: a Beta draw costs ~60 ns, so P(best) with 10,000 draws is
about 1 ms. ``decide`` computes P(beats) only once the cheap promotion guards pass, and
P(best) for retirement only when a normal approximation (with a safety margin of
:func:`screen_margin`) says it could be below ``retire_below``, and then first with an
eighth of the draws (enough when it is clearly above the threshold).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Literal

import numpy as np
from scipy import special

from events.models import (
    Evidence,
    Interval,
    VariantPromoted,
    VariantRetired,
    VariantRolledBack,
    deterministic_event_id,
)
from events.snapshots import VariantStatus
from learner.sequential import DEFAULT_TAU2, msprt
from learner.stats import (
    DEFAULT_DRAWS,
    ArmSummary,
    p_beats,
    p_beats_normal,
    p_best,
    to_arm_evidence,
)
from prompts.config import PromotionConfig

DecisionKind = Literal["promote", "rollback", "retire"]

SCREEN_MARGIN_Z = 1.0
"""Safety margin (in z units) of the normal screen before the P(best) Monte Carlo,
when an arm of the pair has fewer than :data:`LARGE_SAMPLE` rewards.

Over a grid of Beta posteriors (n from 30 to 50,000 per arm, means 0.005 to 0.995),
wherever the exact P(a beats b) is below 0.05 the normal approximation's z is at most
0.84 above the exact one (worst: 30 rewards at 0.045 against 1,000 at 0.005).
``tests/learner/test_policy.py`` checks a sample of that grid against numerical
integration."""

SCREEN_MARGIN_Z_LARGE = 0.5
"""The margin when both arms of the pair have >= :data:`LARGE_SAMPLE` rewards: on the
same grid restricted to n >= 200 the worst error is 0.43 (3 % vs 1 % rewards)."""

LARGE_SAMPLE = 200


def screen_margin(n_a: int, n_b: int) -> float:
    """The z margin of the normal screen for a pair of arms with these sample sizes."""
    return SCREEN_MARGIN_Z_LARGE if min(n_a, n_b) >= LARGE_SAMPLE else SCREEN_MARGIN_Z


# --------------------------------------------------------------------------- state


@dataclass(frozen=True, slots=True)
class Probation:
    """A promotion under watch."""

    champion: str
    """The promoted variant (the current champion)."""
    previous: str
    """The champion it replaced; a rollback restores it."""
    baseline: ArmSummary
    """``previous``'s summary frozen at the promotion."""
    since: ArmSummary
    """``champion``'s data since the promotion (``now.since(at_promotion)``)."""

    def __post_init__(self) -> None:
        if self.champion == self.previous:
            raise ValueError("probation: champion and previous must differ")
        if self.since.variant != self.champion or self.baseline.variant != self.previous:
            raise ValueError("probation: summaries must belong to champion and previous")

    @classmethod
    def start(cls, champion: ArmSummary, previous: ArmSummary) -> Probation:
        """Probation of a promotion happening now (empty ``since``)."""
        return cls(
            champion=champion.variant,
            previous=previous.variant,
            baseline=previous,
            since=ArmSummary(champion.variant),
        )


@dataclass(frozen=True, slots=True)
class PromptState:
    """What the policy knows about one prompt.

    ``arms`` holds every variant's :class:`~learner.stats.ArmSummary` (retired ones may be
    included; they are ignored), ``statuses`` every variant's status. The champion's
    status is ``"champion"`` or ``"probation"``; exactly one arm has one of those.
    """

    champion: str
    arms: Mapping[str, ArmSummary]
    statuses: Mapping[str, VariantStatus]
    probation: Probation | None = None
    paused: bool = False

    def __post_init__(self) -> None:
        # Freeze the mappings so the state cannot change under a decision.
        object.__setattr__(self, "arms", MappingProxyType(dict(self.arms)))
        object.__setattr__(self, "statuses", MappingProxyType(dict(self.statuses)))
        problems = []
        if set(self.arms) != set(self.statuses):
            problems.append(f"arms {sorted(self.arms)} and statuses {sorted(self.statuses)} differ")
        for name, arm in self.arms.items():
            if arm.variant != name:
                problems.append(f"arms[{name!r}] is the summary of {arm.variant!r}")
        if self.champion not in self.arms:
            problems.append(f"champion {self.champion!r} has no summary")
        elif self.statuses[self.champion] not in ("champion", "probation"):
            problems.append(
                f"champion {self.champion!r} has status {self.statuses[self.champion]!r}"
            )
        leaders = [v for v, s in self.statuses.items() if s in ("champion", "probation")]
        if len(leaders) > 1:
            problems.append(f"several arms lead: {leaders}")
        if self.probation is not None:
            if self.probation.champion != self.champion:
                problems.append(
                    f"probation is of {self.probation.champion!r}, champion is {self.champion!r}"
                )
            if self.probation.previous not in self.arms:
                problems.append(
                    f"probation's previous champion {self.probation.previous!r} has no summary"
                )
        if problems:
            raise ValueError("invalid PromptState: " + "; ".join(problems))

    @classmethod
    def of(
        cls,
        champion: str,
        arms: Iterable[ArmSummary],
        statuses: Mapping[str, VariantStatus] | None = None,
        *,
        probation: Probation | None = None,
        paused: bool = False,
    ) -> PromptState:
        """Build from summaries; variants missing from ``statuses`` are challengers
        (the champion: ``"champion"``, or ``"probation"`` when ``probation`` is given)."""
        summaries = {a.variant: a for a in arms}
        given = dict(statuses or {})
        lead: VariantStatus = "probation" if probation is not None else "champion"
        full: dict[str, VariantStatus] = {
            v: given.get(v, lead if v == champion else "challenger") for v in summaries
        }
        return cls(
            champion=champion, arms=summaries, statuses=full, probation=probation, paused=paused
        )

    @property
    def challengers(self) -> list[str]:
        """Variants with status ``challenger``, in name order (deterministic)."""
        return sorted(v for v, s in self.statuses.items() if s == "challenger")

    @property
    def active(self) -> list[str]:
        """Champion first, then the challengers: the arms P(best) is taken over."""
        return [self.champion, *self.challengers]

    def probation_active(self, config: PromotionConfig) -> bool:
        """True while the champion has had at most ``probation_samples`` rewards since its
        promotion (the check after the last of them is still a probation check)."""
        return (
            self.probation is not None
            and config.probation_samples > 0
            and self.probation.since.n <= config.probation_samples
        )

    # ---- streaming helpers (each returns a new state)

    def with_reward(self, variant: str, reward: float) -> PromptState:
        """This state plus one reward for ``variant`` (also counted in ``probation.since``)."""
        arms = dict(self.arms)
        arms[variant] = arms[variant].with_reward(reward)
        return self._replace(
            arms=arms, probation=self._probation_plus(variant, lambda s: s.with_reward(reward))
        )

    def with_execution(
        self, variant: str, cost_usd: float = 0.0, error: bool = False
    ) -> PromptState:
        """This state plus one execution of ``variant``."""
        arms = dict(self.arms)
        arms[variant] = arms[variant].with_execution(cost_usd, error)
        return self._replace(
            arms=arms,
            probation=self._probation_plus(variant, lambda s: s.with_execution(cost_usd, error)),
        )

    def _probation_plus(
        self, variant: str, step: Callable[[ArmSummary], ArmSummary]
    ) -> Probation | None:
        p = self.probation
        if p is None or p.champion != variant:
            return p
        return Probation(
            champion=p.champion, previous=p.previous, baseline=p.baseline, since=step(p.since)
        )

    def _replace(self, **changes: object) -> PromptState:
        fields: dict[str, object] = {
            "champion": self.champion,
            "arms": self.arms,
            "statuses": self.statuses,
            "probation": self.probation,
            "paused": self.paused,
        }
        fields.update(changes)
        return PromptState(**fields)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- decisions


@dataclass(frozen=True, slots=True)
class Decision:
    """What the policy decided, with the numbers behind it."""

    kind: DecisionKind
    variant: str
    """promote: the new champion; rollback: the demoted champion; retire: the retired challenger."""
    counterpart: str
    """promote: the previous champion; rollback: the restored champion; retire: the champion."""
    evidence: Evidence
    reason: str = ""

    def to_event(
        self, prompt_id: str, trigger_sequence: int, occurred_at: datetime | None = None
    ) -> VariantPromoted | VariantRolledBack | VariantRetired:
        """The decision event. Its id is ``deterministic_event_id(prompt_id, kind,
        trigger_sequence, variant)``, so a replay produces the same id and JetStream drops
        the duplicate. (The variant is part of the id so that two retirements decided at
        the same trigger sequence do not collide.) Pass ``occurred_at`` (the trigger
        event's time) to make the whole event replay-identical."""
        common: dict[str, object] = {
            "event_id": deterministic_event_id(
                prompt_id, self.kind, trigger_sequence, self.variant
            ),
            "prompt_id": prompt_id,
            "variant": self.variant,
            "evidence": self.evidence,
            "trigger_sequence": trigger_sequence,
        }
        if occurred_at is not None:
            common["occurred_at"] = occurred_at
        if self.kind == "promote":
            return VariantPromoted(previous_champion=self.counterpart, reason="auto", **common)  # type: ignore[arg-type]
        if self.kind == "rollback":
            return VariantRolledBack(restored=self.counterpart, reason="auto", **common)  # type: ignore[arg-type]
        return VariantRetired(reason=self.reason or self.evidence.rule, **common)  # type: ignore[arg-type]


def apply_decision(state: PromptState, decision: Decision, config: PromotionConfig) -> PromptState:
    """The state right after ``decision`` (what the learner's projection records).

    promote: the winner becomes champion (status ``probation`` when
    ``probation_samples > 0``), the old champion a challenger. rollback: the previous
    champion is champion again and the demoted one is retired (it regressed
    significantly or broke a guardrail). retire: the challenger is retired.
    """
    statuses = dict(state.statuses)
    if decision.kind == "promote":
        new, old = decision.variant, state.champion
        probation = (
            Probation.start(state.arms[new], state.arms[old])
            if config.probation_samples > 0
            else None
        )
        statuses[old] = "challenger"
        statuses[new] = "probation" if probation is not None else "champion"
        return state._replace(champion=new, statuses=statuses, probation=probation)
    if decision.kind == "rollback":
        statuses[decision.variant] = "retired"
        statuses[decision.counterpart] = "champion"
        return state._replace(champion=decision.counterpart, statuses=statuses, probation=None)
    statuses[decision.variant] = "retired"
    return state._replace(statuses=statuses)


def end_probation_if_due(state: PromptState, config: PromotionConfig) -> PromptState:
    """Clear a probation that has run its ``probation_samples`` (status back to champion)."""
    if state.probation is None or state.probation_active(config):
        return state
    statuses = dict(state.statuses)
    statuses[state.champion] = "champion"
    return state._replace(statuses=statuses, probation=None)


# --------------------------------------------------------------------------- helpers


def lift_with_interval(
    challenger: ArmSummary, champion: ArmSummary, alpha: float = 0.05, tau2: float = DEFAULT_TAU2
) -> tuple[float, Interval]:
    """``mean_c - mean_h`` and its always-valid (1 - alpha) confidence sequence.

    The interval is the mSPRT's (:meth:`learner.sequential.MsprtResult.confidence_sequence`),
    valid however often it is looked at; it excludes 0 exactly when the test rejects.
    Before the test has enough data it is [-1, 1].
    """
    result = msprt(challenger, champion, tau2=tau2)
    return result.lift, result.confidence_sequence(alpha)


def error_rate_breach(errors: int, executions: int, limit: float) -> float:
    """Always-valid p-value of ``H0: error rate <= limit`` from ``errors`` in ``executions``.

    Mixture martingale with a uniform prior on rates above the limit (``p0 = limit``,
    ``k`` errors, ``m`` executions)::

        Lambda = int_{p0}^1 p^k (1-p)^(m-k) dp / ((1 - p0) p0^k (1 - p0)^(m-k))

    For every true rate ``<= p0`` each factor ``(p/p0)^x ((1-p)/(1-p0))^(1-x)`` with
    ``p > p0`` has expectation ``<= 1``, so ``Lambda`` is a supermartingale and
    ``min(1, 1/Lambda)`` is valid at any stopping time (Ville). Returns that p-value.
    """
    if executions <= 0 or errors <= 0:
        return 1.0
    if limit <= 0.0:
        return 0.0
    if limit >= 1.0:
        return 1.0
    k, m = float(errors), float(executions)
    a, b = k + 1.0, m - k + 1.0
    upper_tail = float(special.betaincc(a, b, limit))  # P(Beta(a, b) > p0)
    if upper_tail <= 0.0:
        return 1.0
    log_lam = (
        float(special.betaln(a, b))
        + math.log(upper_tail)
        - math.log1p(-limit)
        - k * math.log(limit)
        - (m - k) * math.log1p(-limit)
    )
    return 1.0 if log_lam <= 0 else math.exp(-log_lam)


def _constraint_breaches(arm: ArmSummary, config: PromotionConfig) -> list[str]:
    out = []
    if config.max_cost_usd is not None:
        cost = arm.cost_mean_usd
        if cost is None or cost > config.max_cost_usd:
            out.append(f"mean cost {_fmt(cost)} > max_cost_usd {config.max_cost_usd}")
    if config.max_p95_latency_ms is not None:
        p95 = arm.latency_p95_ms
        if p95 is None or p95 > config.max_p95_latency_ms:
            out.append(
                f"p95 latency {_fmt(p95)} ms > max_p95_latency_ms {config.max_p95_latency_ms}"
            )
    if config.max_error_rate is not None:
        rate = arm.error_rate
        if rate is None or rate > config.max_error_rate:
            out.append(f"error rate {_fmt(rate)} > max_error_rate {config.max_error_rate}")
    return out


def _fmt(x: float | None) -> str:
    return "unknown" if x is None else f"{x:.4g}"


@dataclass(frozen=True, slots=True)
class PromotionCheck:
    """Every promotion guard for one challenger against the champion."""

    variant: str
    champion: str
    lift: float
    lift_interval: Interval
    p_value: float
    alpha: float
    """The per-test level (``config.alpha / K``)."""
    p_better: float | None
    """P(challenger beats champion); None when not computed (an earlier guard failed)."""
    blocked_by: tuple[str, ...] = field(default=())
    """The guards that failed, in words; empty means promote."""

    @property
    def passes(self) -> bool:
        return not self.blocked_by


def check_promotion(
    state: PromptState,
    challenger: str,
    config: PromotionConfig,
    rng: np.random.Generator,
    *,
    tau2: float = DEFAULT_TAU2,
    draws: int = DEFAULT_DRAWS,
    always_compute_p: bool = False,
) -> PromotionCheck:
    """Evaluate the promotion guards for ``challenger`` (see the module doc).

    The Monte Carlo P(beats) is computed only when every other guard passes, unless
    ``always_compute_p`` (for reports). All failing cheap guards are listed.
    """
    c, h = state.arms[challenger], state.arms[state.champion]
    k = max(1, len(state.challengers))
    alpha_each = config.alpha / k
    test = msprt(c, h, tau2=tau2)
    blocked: list[str] = []
    if c.n < config.min_samples or h.n < config.min_samples:
        blocked.append(f"min_samples: n={c.n}/{h.n} < {config.min_samples}")
    blocked += _constraint_breaches(c, config)
    if not test.lift >= config.min_lift:  # also catches NaN
        blocked.append(f"lift {test.lift:+.4f} < min_lift {config.min_lift}")
    if not (test.rejects(alpha_each) and test.lift > 0):
        blocked.append(f"mSPRT p={test.p_value:.3g} > alpha {alpha_each:.3g}")
    p_better: float | None = None
    if not blocked or always_compute_p:
        p_better = p_beats(c.posterior, h.posterior, rng, draws)
        if p_better < config.threshold:
            blocked.append(f"P(beats)={p_better:.3f} < threshold {config.threshold}")
    return PromotionCheck(
        variant=challenger,
        champion=state.champion,
        lift=test.lift,
        lift_interval=test.confidence_sequence(config.alpha),
        p_value=test.p_value,
        alpha=alpha_each,
        p_better=p_better,
        blocked_by=tuple(blocked),
    )


# --------------------------------------------------------------------------- decide


def decide(
    state: PromptState,
    config: PromotionConfig,
    rng: np.random.Generator,
    *,
    tau2: float = DEFAULT_TAU2,
    draws: int = DEFAULT_DRAWS,
) -> Decision | None:
    """The policy's decision for one prompt now, or None.

    Order: a running probation's rollback check; then (unless paused) a promotion if no
    probation is running; then (unless paused) a retirement. At most one decision per call;
    the caller applies it (:func:`apply_decision`) and may call again.
    """
    on_probation = state.probation_active(config)
    if on_probation:
        rollback = _check_rollback(state, config, rng, tau2=tau2, draws=draws)
        if rollback is not None:
            return rollback
    if state.paused:
        return None
    if not on_probation:
        promotion = _check_promotions(state, config, rng, tau2=tau2, draws=draws)
        if promotion is not None:
            return promotion
    return _check_retirements(state, config, rng, draws=draws, on_probation=on_probation)


def _check_promotions(
    state: PromptState,
    config: PromotionConfig,
    rng: np.random.Generator,
    *,
    tau2: float,
    draws: int,
) -> Decision | None:
    # Highest mean first; name breaks ties so the order never depends on dict order.
    order = sorted(
        (v for v in state.challengers if state.arms[v].n > 0),
        key=lambda v: (-state.arms[v].mean, v),
    )
    for variant in order:
        check = check_promotion(state, variant, config, rng, tau2=tau2, draws=draws)
        if check.passes:
            c, h = state.arms[variant], state.arms[state.champion]
            rule = (
                f"P({variant}>{state.champion})={check.p_better:.3f}>={config.threshold}, "
                f"n={c.n}/{h.n}>={config.min_samples}, lift {check.lift:+.4f}>={config.min_lift}, "
                f"mSPRT p={check.p_value:.3g}<={check.alpha:.3g}, hard constraints hold"
            )
            evidence = Evidence(
                challenger=to_arm_evidence(c),
                champion=to_arm_evidence(h),
                p_better=check.p_better,
                p_value=check.p_value,
                lift=check.lift,
                lift_interval=check.lift_interval,
                rule=rule,
                details={
                    "tau2": tau2,
                    "alpha_per_test": check.alpha,
                    "challengers": len(state.challengers),
                    "draws": draws,
                },
            )
            return Decision(
                kind="promote",
                variant=variant,
                counterpart=state.champion,
                evidence=evidence,
                reason=rule,
            )
    return None


def _check_rollback(
    state: PromptState,
    config: PromotionConfig,
    rng: np.random.Generator,
    *,
    tau2: float,
    draws: int,
) -> Decision | None:
    probation = state.probation
    assert probation is not None
    new, base = probation.since, probation.baseline
    rules: list[str] = []
    error_p: float | None = None
    if config.max_error_rate is not None:
        error_p = error_rate_breach(new.errors, new.executions, config.max_error_rate)
        if error_p <= config.rollback_alpha:
            rules.append(
                f"error rate {new.errors}/{new.executions} since promotion > max_error_rate {config.max_error_rate} (always-valid p={error_p:.3g}<={config.rollback_alpha})"
            )
    test = msprt(new, base, tau2=tau2)
    if test.rejects(config.rollback_alpha) and test.lift < 0:
        rules.append(
            f"regression: lift {test.lift:+.4f} since promotion vs {probation.previous}, mSPRT p={test.p_value:.3g}<={config.rollback_alpha}"
        )
    if not rules:
        return None
    p_better = p_beats(new.posterior, base.posterior, rng, draws) if new.n else None
    evidence = Evidence(
        challenger=to_arm_evidence(_with_latency(new, state.arms[probation.champion])),
        champion=to_arm_evidence(base),
        p_better=p_better,
        p_value=test.p_value,
        lift=test.lift if new.n and base.n else None,
        lift_interval=test.confidence_sequence(config.rollback_alpha) if new.n and base.n else None,
        rule="; ".join(rules),
        details={
            "tau2": tau2,
            "error_p_value": error_p,
            "probation_samples": config.probation_samples,
            "since_promotion_n": new.n,
        },
    )
    return Decision(
        kind="rollback",
        variant=probation.champion,
        counterpart=probation.previous,
        evidence=evidence,
        reason=evidence.rule,
    )


def _with_latency(since: ArmSummary, whole: ArmSummary) -> ArmSummary:
    # Percentiles cannot be subtracted; the evidence shows the arm's current ones.
    return ArmSummary(
        since.variant,
        since.n,
        since.reward_sum,
        since.reward_sq_sum,
        since.executions,
        since.errors,
        since.cost_sum,
        whole.latency_p50_ms,
        whole.latency_p95_ms,
    )


def retire_screen(state: PromptState, variant: str, retire_below: float) -> bool:
    """True when ``variant``'s P(best) *might* be below ``retire_below`` (so the Monte Carlo
    is needed); False when it surely is not.

    Lower bound: ``P(best_i) >= 1 - sum_j P(theta_j > theta_i)``; each pairwise term is
    the normal approximation made pessimistic by :func:`screen_margin` z units.
    """
    me = state.arms[variant]
    i = me.posterior
    others = [state.arms[v] for v in state.active if v != variant]
    if not others:
        return False
    lower = 1.0
    for other in others:
        j = other.posterior
        z = float(special.ndtri(p_beats_normal(i.alpha, i.beta, j.alpha, j.beta)))
        lower -= 1.0 - float(special.ndtr(z - screen_margin(me.n, other.n)))
    return lower < retire_below


def _check_retirements(
    state: PromptState,
    config: PromotionConfig,
    rng: np.random.Generator,
    *,
    draws: int,
    on_probation: bool,
) -> Decision | None:
    protected = state.probation.previous if (on_probation and state.probation is not None) else None
    candidates = [
        v for v in state.challengers if v != protected and state.arms[v].n >= config.min_samples
    ]
    candidates = [v for v in candidates if retire_screen(state, v, config.retire_below)]
    if not candidates:
        return None
    active = state.active
    posteriors = [state.arms[v].posterior for v in active]
    # Two stages: a quick pass settles the usual case (clearly above the threshold, by
    # four standard errors at the threshold); only otherwise the full draws decide.
    quick = max(1, draws // 8)
    probs = p_best(posteriors, rng, quick)
    cutoff = config.retire_below + 4.0 * math.sqrt(
        config.retire_below * (1.0 - config.retire_below) / quick
    )
    if all(probs[active.index(v)] > cutoff for v in candidates):
        return None
    probs = p_best(posteriors, rng, draws)
    by_name = dict(zip(active, probs.tolist(), strict=True))
    below = sorted((by_name[v], v) for v in candidates if by_name[v] < config.retire_below)
    if not below:
        return None
    pb, variant = below[0]
    c, h = state.arms[variant], state.arms[state.champion]
    lift, interval = lift_with_interval(c, h, config.alpha)
    rule = f"P(best)={pb:.4f}<{config.retire_below} after n={c.n}>={config.min_samples}"
    evidence = Evidence(
        challenger=to_arm_evidence(c),
        champion=to_arm_evidence(h),
        p_better=None,
        lift=lift,
        lift_interval=interval,
        rule=rule,
        details={"p_best": by_name, "draws": draws},
    )
    return Decision(
        kind="retire", variant=variant, counterpart=state.champion, evidence=evidence, reason=rule
    )


# --------------------------------------------------------------------------- recommendation


def recommendation(
    state: PromptState,
    config: PromotionConfig,
    rng: np.random.Generator,
    *,
    tau2: float = DEFAULT_TAU2,
    draws: int = DEFAULT_DRAWS,
) -> str:
    """One line for ``promptlab stats``: what the policy would do, or why it waits.

    e.g. ``"promote v2 (P=0.97, lift +0.050 [+0.020, +0.080])"``, ``"retire v3 (P(best)=0.004)"``,
    ``"keep exploring (leader v2: P=0.81, lift +0.020 [-0.010, +0.050])"``,
    ``"insufficient data (v2 120/200)"``. Intervals are the always-valid ones.
    """
    decision = decide(state, config, rng, tau2=tau2, draws=draws)
    if decision is not None:
        ev = decision.evidence
        if decision.kind == "promote":
            return f"promote {decision.variant} (P={ev.p_better:.2f}, lift {_lift_text(ev.lift, ev.lift_interval)})"
        if decision.kind == "rollback":
            return f"roll back {decision.variant} to {decision.counterpart} ({ev.rule})"
        return f"retire {decision.variant} ({ev.rule})"
    if state.probation_active(config):
        assert state.probation is not None
        return f"probation: {state.champion} {state.probation.since.n}/{config.probation_samples} since promotion"
    if state.paused:
        return "paused (champion only)"
    challengers = state.challengers
    if not challengers:
        return "no challengers"
    champ = state.arms[state.champion]
    short = [v for v in challengers if state.arms[v].n < config.min_samples]
    if champ.n < config.min_samples or len(short) == len(challengers):
        waiting = [
            f"{v} {state.arms[v].n}/{config.min_samples}"
            for v in [state.champion, *challengers]
            if state.arms[v].n < config.min_samples
        ]
        return "insufficient data (" + ", ".join(waiting) + ")"
    ready = [v for v in challengers if v not in short]
    leader = max(ready, key=lambda v: (state.arms[v].mean, v))
    check = check_promotion(
        state, leader, config, rng, tau2=tau2, draws=draws, always_compute_p=True
    )
    return f"keep exploring (leader {leader}: P={check.p_better:.2f}, lift {_lift_text(check.lift, check.lift_interval)})"


def _lift_text(lift: float | None, interval: Interval | None) -> str:
    if lift is None:
        return "n/a"
    if interval is None:
        return f"{lift:+.3f}"
    return f"{lift:+.3f} [{interval.low:+.3f}, {interval.high:+.3f}]"
