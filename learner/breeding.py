"""Continuous breeding: keep each prompt's live challengers at ``population``.

Runs beside the learner's loop (``[learner.evolution]``, off by default). For each
prompt whose live challengers fall below ``population`` and whose champion has
``min_champion_samples`` rewarded executions, one cycle:

1. runs the champion offline on the prompt's ``[[examples]]``, or on a held-out set of
   good calls from traffic once the prompt has captured enough (cached per version);
2. breeds one mutant of the champion with a seeded operator: ``reflect`` reads the
   champion's failing cases, real failures from traffic (low-rated calls with their
   comments, corrections: :mod:`learner.live_cases`) and the reasons challengers were
   retired, ``crossover`` pairs it with the best retired challenger;
3. validates it (required variables, undeclared ones, syntax, prompt rules, near-
   duplicates of every variant the prompt has had);
4. runs it offline on the same cases and compares it with the champion by the lab's
   paired test: a mutant significantly worse than the champion never sees traffic;
5. publishes a ``VariantRegistered`` with ``source = offline`` and the check for every
   bred mutant, and for one that passed a live ``VariantRegistered`` stored in the
   variants bucket, so the learner projects it as a challenger and every sidecar routes
   to it. From there it competes like any challenger: promotion needs live evidence.

Caps: ``max_mutants_per_day`` per prompt and ``max_usd_per_day`` in all, per UTC day of
the breeder's clock (counted in memory: a restart starts the day's count afresh). The
offline check's executions are not published: they must not count as live traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from promptlab.events.bus import EventBus
from promptlab.events.models import VariantRegistered, decode, encode
from promptlab.events.subjects import Bucket, variant_key
from promptlab.lab.budget import Budget
from promptlab.lab.client import ModelClient
from promptlab.lab.evolution import candidate_event
from promptlab.lab.evolution.fitness import failing_cases
from promptlab.lab.experiment import CaseSpec, Experiment, ExperimentSpec, resolve
from promptlab.lab.mutation import (
    FailingCase,
    LLMMutator,
    MutantRejected,
    MutationRequest,
    MutatorError,
    Operator,
    load_instructions,
    validate_mutant,
)
from promptlab.lab.report import build_report
from promptlab.lab.results import Trial
from promptlab.lab.runner import Point, run_experiment
from promptlab.lab.search import Candidate, Evaluation, near_duplicate
from promptlab.learner.config import EvolutionSettings
from promptlab.learner.live_cases import ReadExamples, held_out_cases, live_failures
from promptlab.learner.storage.view import PromptView
from promptlab.prompts import PromptSpec, VariantSpec

log = logging.getLogger(__name__)

Views = Callable[[str], Awaitable[PromptView | None]]
Decisions = Callable[[str], Awaitable[list[dict[str, Any]]]]


@dataclass(frozen=True)
class BreedOutcome:
    """What one breeding attempt did (also in the events it published)."""

    prompt_id: str
    operator: str
    variant: str | None
    accepted: bool
    reason: str
    spend_usd: float = 0.0
    check: dict[str, Any] | None = None


@dataclass
class _Day:
    day: str = ""
    mutants: Counter[str] = field(default_factory=Counter)
    spend_usd: float = 0.0


class Breeder:
    """Breeds challengers for ``prompts``; :meth:`run` until the stop event is set."""

    def __init__(
        self,
        settings: EvolutionSettings,
        *,
        bus: EventBus,
        client: ModelClient,
        prompts: Mapping[str, PromptSpec],
        views: Views,
        decisions: Decisions | None = None,
        examples: ReadExamples | None = None,
        seed: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.bus = bus
        self.client = client
        self.prompts = dict(prompts)
        self.views = views
        self.decisions = decisions
        self.examples = examples
        """Production examples (``read_examples`` bound to the store): real failures for
        ``reflect`` and a held-out check set (:mod:`learner.live_cases`)."""
        self.seed = seed
        self.clock = clock
        self.mutator = LLMMutator(
            complete=self._complete, model=settings.mutator, instructions=load_instructions()
        )
        self.known: dict[str, dict[str, VariantSpec]] = {
            pid: {v.name: v for v in spec.variants} for pid, spec in self.prompts.items()
        }
        self.pending: dict[str, set[str]] = {pid: set() for pid in self.prompts}
        """Accepted mutants the projection has not shown as challengers yet."""
        self.outcomes: list[BreedOutcome] = []
        self._day = _Day()
        self._attempts: Counter[str] = Counter()
        self._champion_trials: dict[tuple[str, str, str], list[Trial]] = {}
        self._traffic_checks: dict[tuple[str, str], Experiment] = {}
        self._loaded = False

    async def _complete(self, model: str, body: dict[str, Any]) -> Any:
        return await self.client.complete(model, body)

    # ------------------------------------------------------------------ loop

    async def run(self, stop: asyncio.Event) -> None:
        """Check every prompt each ``interval_s`` until ``stop`` is set; never raises."""
        while not stop.is_set():
            for prompt_id in list(self.prompts):
                if stop.is_set():
                    return
                try:
                    await self.breed_once(prompt_id)
                except asyncio.CancelledError:
                    raise
                except Exception:  # breeding must never take the learner down
                    log.exception("breeding for %s failed; trying again later", prompt_id)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.interval_s)

    async def load_known(self) -> None:
        """Learn run-time variants (API, earlier breeding) from the variants bucket."""
        self._loaded = True
        try:
            keys = await self.bus.kv_keys(str(Bucket.VARIANTS))
        except Exception as exc:
            log.info("variants bucket not readable yet (%s)", exc)
            self._loaded = False
            return
        for key in keys:
            entry = await self.bus.kv_get(str(Bucket.VARIANTS), key)
            if entry is None or entry.value is None:
                continue
            with contextlib.suppress(Exception):
                event = decode(entry.value)
                if isinstance(event, VariantRegistered) and event.prompt_id in self.known:
                    self.known[event.prompt_id].setdefault(event.variant, _spec_of(event))

    # ------------------------------------------------------------------ one attempt

    def _within_caps(self, prompt_id: str) -> bool:
        today = datetime.fromtimestamp(self.clock(), UTC).date().isoformat()
        if self._day.day != today:
            self._day = _Day(day=today)
        return (
            self._day.mutants[prompt_id] < self.settings.max_mutants_per_day
            and self._day.spend_usd < self.settings.max_usd_per_day
        )

    async def breed_once(self, prompt_id: str) -> BreedOutcome | None:
        """One attempt for ``prompt_id`` when it needs a challenger; None when it does not."""
        if not self._loaded:
            await self.load_known()
        prompt = self.prompts[prompt_id]
        view = await self.views(prompt_id)
        if view is None or view.paused or not self._within_caps(prompt_id):
            return None
        challengers = {a.variant for a in view.active if a.status == "challenger"}
        self.pending[prompt_id] -= set(view.arms)
        if len(challengers | self.pending[prompt_id]) >= self.settings.population:
            return None
        champion_arm = view.arms.get(view.champion)
        champion = self.known[prompt_id].get(view.champion)
        if champion is None or champion_arm is None:
            return None
        if champion_arm.n < self.settings.min_champion_samples:
            return None
        experiment = await self._check_experiment(prompt, champion)
        if experiment is None:
            return None
        self._day.mutants[prompt_id] += 1
        self._attempts[prompt_id] += 1
        outcome = await self._attempt(prompt, view, champion, experiment)
        self._day.spend_usd += outcome.spend_usd
        self.outcomes.append(outcome)
        log.info(
            "bred %s for %s by %s: %s (%s)",
            outcome.variant or "nothing",
            prompt_id,
            outcome.operator,
            "into live traffic" if outcome.accepted else "kept out",
            outcome.reason,
        )
        return outcome

    async def _check_experiment(
        self, prompt: PromptSpec, champion: VariantSpec
    ) -> Experiment | None:
        """The offline check's experiment: a held-out set of good calls from traffic
        once there are enough (kept for the champion's version, so its trials are run
        once), else the prompt's ``[[examples]]``; None when there is neither."""
        key = (prompt.id, champion.version)
        if key in self._traffic_checks:
            return self._traffic_checks[key]
        if self.examples is not None:
            settings = self.settings
            cases = await held_out_cases(
                self.examples,
                prompt.id,
                min_cases=settings.gate_min_cases,
                max_cases=settings.gate_max_cases,
                good_reward=settings.gate_good_reward,
            )
            if cases:
                experiment = self._experiment(prompt, cases)
                self._traffic_checks[key] = experiment
                return experiment
        return self._experiment(prompt) if prompt.examples else None

    def _experiment(self, prompt: PromptSpec, cases: list[CaseSpec] | None = None) -> Experiment:
        spec = ExperimentSpec.model_validate(
            {
                "name": f"breed-{prompt.id}" + ("-traffic" if cases else ""),
                "prompt": prompt.id,
                "cases": [c.model_dump() for c in cases or ()],
                "repeats": self.settings.repeats,
                "concurrency": 4,
                "evaluators": [
                    {"kind": "judge", "model": self.settings.judge, "rubric": self.settings.rubric}
                ],
                "alpha": self.settings.alpha,
            }
        )
        return resolve(spec, prompt=prompt)

    async def _trials(self, experiment: Experiment, variant: VariantSpec) -> list[Trial]:
        point = Point(variant, variant.model, dict(variant.params))
        run = await run_experiment(experiment, self.client, points=[point], budget=Budget())
        return run.trials

    def _operator(self, prompt_id: str) -> Operator:
        rng = np.random.default_rng(
            [self.seed, zlib.crc32(prompt_id.encode()), self._attempts[prompt_id]]
        )
        strategies = self.settings.strategies
        return strategies[int(rng.integers(len(strategies)))]  # type: ignore[return-value]

    async def _retired(
        self, prompt_id: str, view: PromptView
    ) -> tuple[VariantSpec | None, list[FailingCase]]:
        """The best retired challenger (by reward) and every retirement's reason."""
        retired = sorted(
            (a for a in view.arms.values() if a.status == "retired" and a.n > 0),
            key=lambda a: -(a.successes / a.n),
        )
        best = next(
            (
                self.known[prompt_id][a.variant]
                for a in retired
                if a.variant in self.known[prompt_id]
            ),
            None,
        )
        reasons: list[FailingCase] = []
        if self.decisions is not None:
            for row in await self.decisions(prompt_id):
                if row.get("type") == "variant.retired":
                    arm = view.arms.get(str(row.get("variant")))
                    quality = arm.successes / arm.n if arm is not None and arm.n else 0.0
                    reasons.append(
                        FailingCase(
                            f"live: {row.get('variant')} retired",
                            {},
                            None,
                            None,
                            quality,
                            {},
                            [str(row.get("summary") or "")],
                        )
                    )
        return best, reasons

    async def _attempt(
        self, prompt: PromptSpec, view: PromptView, champion: VariantSpec, experiment: Experiment
    ) -> BreedOutcome:
        operator = self._operator(prompt.id)
        key = (prompt.id, champion.version, experiment.id)
        if key not in self._champion_trials:
            self._champion_trials[key] = await self._trials(experiment, champion)
        champion_trials = self._champion_trials[key]
        spend = 0.0
        other, retired_reasons = await self._retired(prompt.id, view)
        if operator == "crossover" and other is None:
            operator = "reflect"
        real: list[FailingCase] = []
        if operator == "reflect" and self.examples is not None:
            real = await live_failures(
                self.examples,
                prompt.id,
                limit=self.settings.live_failures,
                failure_reward=self.settings.failure_reward,
            )
        # A check on traffic is held out: its cases never reach the mutator, so the
        # check does not grade a mutant on what it was shown.
        held_out = self._traffic_checks.get((prompt.id, champion.version)) is experiment
        offline = [] if held_out else failing_cases(experiment, champion_trials)
        request = MutationRequest(
            operator=operator,
            parent=champion,
            prompt=prompt,
            other=other if operator == "crossover" else None,
            failures=[*real, *offline, *retired_reasons],
        )
        try:
            mutation = await self.mutator.mutate(request)
        except MutatorError as exc:
            return BreedOutcome(prompt.id, operator, None, False, f"mutator failed: {exc}", spend)
        spend += mutation.cost_usd
        generation = (champion.generation or 0) + 1
        parents = [champion, *([other] if request.other is not None and other else [])]
        try:
            mutant = validate_mutant(
                prompt,
                parents,
                mutation.draft,
                name="mutant",
                strategy=operator,
                generation=generation,
            )
        except MutantRejected as exc:
            return BreedOutcome(prompt.id, operator, None, False, f"invalid: {exc}", spend)
        mutant = mutant.model_copy(update={"name": f"evo-g{generation}-{mutant.version[:8]}"})
        twin = near_duplicate(mutant, self.known[prompt.id].values())
        if twin is not None:
            return BreedOutcome(
                prompt.id, operator, None, False, f"near-duplicate of {twin}", spend
            )
        mutant_trials = await self._trials(experiment, mutant)
        spend += sum(t.spend_usd for t in mutant_trials)
        check = self._check(experiment, champion, mutant, champion_trials, mutant_trials)
        candidate = Candidate(
            variant=mutant,
            evaluation=Evaluation(fitness=float(check.get("mutant_quality") or 0.0)),
            parents=tuple(p.name for p in parents),
            strategy=operator,
            generation=generation,
            rationale=mutation.draft.rationale,
        )
        self.known[prompt.id][mutant.name] = mutant
        events = [
            candidate_event(
                prompt, candidate, search="continuous", source="offline", offline_check=check
            )
        ]
        if check["passed"]:
            events.append(
                candidate_event(
                    prompt, candidate, search="continuous", source="live", offline_check=check
                )
            )
        await self.bus.publish_many(events)
        if check["passed"]:
            self.pending[prompt.id].add(mutant.name)
            live = events[-1]
            await self.bus.kv_put(
                str(Bucket.VARIANTS), variant_key(prompt.id, mutant.name), encode(live)
            )
        return BreedOutcome(
            prompt.id,
            operator,
            mutant.name,
            bool(check["passed"]),
            str(check["reason"]),
            spend,
            check,
        )

    def _check(
        self,
        experiment: Experiment,
        champion: VariantSpec,
        mutant: VariantSpec,
        champion_trials: list[Trial],
        mutant_trials: list[Trial],
    ) -> dict[str, Any]:
        """The paired comparison on the examples; ``passed`` unless significantly worse."""
        labels = [Point(v, v.model, dict(v.params)).label for v in (champion, mutant)]
        report = build_report(
            [*champion_trials, *mutant_trials],
            experiment=experiment.id,
            prompt=experiment.prompt.id,
            objectives=experiment.spec.objective_list(),
            constraints=[],
            alpha=self.settings.alpha,
            order=labels,
        )
        qualities = {r.label: r.quality_mean for r in report.results}
        mutant_q, champion_q = qualities.get(labels[1]), qualities.get(labels[0])
        if mutant_q is None:
            return {
                "passed": False,
                "reason": "no scored trial in the offline check",
                "champion": champion.name,
                "mutant_quality": None,
            }
        cmp = report.comparisons[0] if report.comparisons else None
        worse = cmp is not None and cmp.significant and cmp.better == labels[0]
        diff = -cmp.mean_diff if cmp is not None else mutant_q - (champion_q or 0.0)
        p = cmp.p_value if cmp is not None else None
        reason = (
            f"significantly worse than {champion.name} (diff {diff:+.3f}, p={p:.4f})"
            if worse and p is not None
            else f"not significantly worse than {champion.name} (diff {diff:+.3f}"
            + (f", p={p:.4f})" if p is not None else ")")
        )
        return {
            "passed": not worse,
            "reason": reason,
            "champion": champion.name,
            "n": cmp.n if cmp is not None else 0,
            "mean_diff": diff,
            "p_value": p,
            "significant": bool(cmp.significant) if cmp is not None else False,
            "test": cmp.test if cmp is not None else None,
            "champion_quality": champion_q,
            "mutant_quality": mutant_q,
        }


def _spec_of(event: VariantRegistered) -> VariantSpec:
    return VariantSpec(
        name=event.variant,
        model=event.model,
        params=event.params,
        system=event.system,
        template=event.template,
        origin=event.origin,
        parent=event.parent,
        parents=tuple(event.parents),
        strategy=event.strategy,
        generation=event.generation,
    )
