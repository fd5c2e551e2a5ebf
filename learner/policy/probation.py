"""Probation after a promotion: when a new champion is rolled back.

During a probation the previous champion keeps ``probation_holdback`` of the traffic,
and :func:`check_rollback` compares it with the new champion on the *same* calls since
the promotion (:class:`learner.policy.concurrent.ProbationTest`, an allocation-aware
e-process): it rolls back when the previous champion is significantly better at
``rollback_alpha``. A drift that moves both arms cancels out; a comparison with the
previous champion's record frozen at the promotion (what a probation without a
holdback falls back to, with the mSPRT) wrongly rolled back 29.5% of promotions of an
equal arm when both dropped 8 points together. It also rolls back on a significant
breach of ``max_error_rate`` (:func:`error_rate_breach`, an always-valid test).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from promptlab.events.models import Evidence
from promptlab.learner.policy.state import Decision, PromptState
from promptlab.learner.stats.beta import ArmSummary, p_beats, to_arm_evidence
from promptlab.learner.stats.etest import probation_steps
from promptlab.learner.stats.sequential import msprt
from promptlab.prompts.config import PromotionConfig


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


def check_rollback(
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
    same = probation.test
    if same is not None:
        if same.rolls_back:
            rules.append(
                f"regression: same-period lift {same.lift:+.4f} vs the holdback of "
                f"{probation.previous} over {same.steps} steps, e-value p={same.p_value:.3g}"
                f"<={config.rollback_alpha}"
            )
    elif test.rejects(config.rollback_alpha) and test.lift < 0:
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
        p_value=same.p_value if same is not None else test.p_value,
        lift=test.lift if new.n and base.n else None,
        lift_interval=test.confidence_sequence(config.rollback_alpha) if new.n and base.n else None,
        rule="; ".join(rules),
        details={
            "test": "same-period e-value against the holdback"
            if same is not None
            else "mSPRT against the frozen record",
            "tau2": tau2,
            "error_p_value": error_p,
            "probation_steps": same.length if same is not None else probation_steps(config),
            "steps_since_promotion": same.steps if same is not None else new.n,
            "since_promotion_n": new.n,
            "same_period_lift": same.lift if same is not None else None,
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
