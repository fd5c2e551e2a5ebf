"""What the policy knows about one prompt, and how a decision changes it.

:class:`PromptState` holds every arm's :class:`~learner.stats.beta.ArmSummary`, the statuses,
the champion, whether exploration is paused and the running :class:`Probation`.
:class:`Decision` is what :func:`learner.policy.rules.decide` returns. The learner publishes
it as an event; the projection applies it when it comes back through the stream, with
:mod:`learner.statuses` (the one rule for status changes). Everything is frozen and
validated on creation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Literal

from promptlab.events.models import (
    Evidence,
    VariantPromoted,
    VariantRetired,
    VariantRolledBack,
    deterministic_event_id,
)
from promptlab.events.snapshots import VariantStatus
from promptlab.learner.policy.concurrent import ConcurrentTest, ProbationTest
from promptlab.learner.stats.beta import ArmSummary
from promptlab.learner.stats.etest import probation_steps
from promptlab.prompts.config import PromotionConfig

DecisionKind = Literal["promote", "rollback", "retire"]


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
    test: ProbationTest | None = None
    """The same-period test against the holdback of ``previous``
    (:class:`learner.policy.concurrent.ProbationTest`); None: judge against the frozen
    ``baseline`` (no holdback, or a state built without the reward history)."""

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

    def running(self, config: PromotionConfig) -> bool:
        """True while the probation lasts: fewer than its length of steps since the
        promotion (with a test), or at most ``probation_steps`` rewards of the new
        champion (without one; the check after the last of them still counts)."""
        if self.test is not None:
            return self.test.running
        length = probation_steps(config)
        return length > 0 and self.since.n <= length


@dataclass(frozen=True, slots=True)
class PromptState:
    """What the policy knows about one prompt.

    ``arms`` holds every variant's :class:`~learner.stats.beta.ArmSummary` (retired ones may be
    included; they are ignored), ``statuses`` every variant's status. The champion's
    status is ``"champion"`` or ``"probation"``; exactly one arm has one of those.
    """

    champion: str
    arms: Mapping[str, ArmSummary]
    statuses: Mapping[str, VariantStatus]
    probation: Probation | None = None
    paused: bool = False
    concurrent: Mapping[str, ConcurrentTest] | None = None
    """Each live challenger's same-period test against the champion
    (:mod:`learner.policy.concurrent`); None: decide on the summaries alone (the
    whole-history mSPRT, kept for states built without the reward history)."""

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
        """True while a probation runs (see :meth:`Probation.running`)."""
        return self.probation is not None and self.probation.running(config)

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
            champion=p.champion,
            previous=p.previous,
            baseline=p.baseline,
            since=step(p.since),
            test=p.test,
        )

    def _replace(self, **changes: object) -> PromptState:
        fields: dict[str, object] = {
            "champion": self.champion,
            "arms": self.arms,
            "statuses": self.statuses,
            "probation": self.probation,
            "paused": self.paused,
            "concurrent": self.concurrent,
        }
        fields.update(changes)
        return PromptState(**fields)  # type: ignore[arg-type]


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
