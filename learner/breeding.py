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
the breeder's clock, kept in NATS (:mod:`learner.breeding_caps`): a restart goes on
with the day's counts, and every call the breeder makes (mutator, offline check, judge)
adds to the spend. The offline check's executions are not published: they must not
count as live traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from promptlab.events.bus import EventBus
from promptlab.events.models import VariantRegistered, decode, encode
from promptlab.events.subjects import Bucket, variant_key
from promptlab.lab.budget import Budget
from promptlab.lab.client import ModelClient
from promptlab.lab.evolution import candidate_event
from promptlab.lab.evolution.breed import breed_one
from promptlab.lab.evolution.fitness import failing_cases
from promptlab.lab.experiment import CaseSpec, Experiment, ExperimentSpec, resolve
from promptlab.lab.mutation import (
    FailingCase,
    LLMMutator,
    Operator,
    load_instructions,
)
from promptlab.lab.results import Trial
from promptlab.lab.runner import Point, run_experiment
from promptlab.learner.breeding_caps import BreedingCaps, CountingClient
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
        self.caps = BreedingCaps(settings, bus, clock)
        """The day's mutants and spend, kept in KV (a restart goes on with them)."""
        self.client = CountingClient(client, self.caps)
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
                    self.known[event.prompt_id].setdefault(
                        event.variant, VariantSpec.from_event(event)
                    )

    # ------------------------------------------------------------------ one attempt

    async def breed_once(self, prompt_id: str) -> BreedOutcome | None:
        """One attempt for ``prompt_id`` when it needs a challenger; None when it does not."""
        if not self._loaded:
            await self.load_known()
        prompt = self.prompts[prompt_id]
        view = await self.views(prompt_id)
        if view is None or view.paused:
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
        if not await self.caps.allows(prompt_id) or not await self.caps.reserve(prompt_id):
            return None
        self._attempts[prompt_id] += 1
        outcome = await self._attempt(prompt, view, champion, experiment)
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
        bred = await breed_one(
            prompt=prompt,
            champion=champion,
            champion_trials=champion_trials,
            experiment=experiment,
            mutator=self.mutator,
            operator=operator,
            other=other,
            failures=[*real, *offline, *retired_reasons],
            known=self.known[prompt.id].values(),
            run_trials=self._trials,
            alpha=self.settings.alpha,
        )
        candidate = bred.candidate
        if candidate is None:
            return BreedOutcome(prompt.id, bred.operator, None, False, bred.reason, bred.spend_usd)
        mutant = candidate.variant
        self.known[prompt.id][mutant.name] = mutant
        check = bred.check
        events = [
            candidate_event(
                prompt, candidate, search="continuous", source="offline", offline_check=check
            )
        ]
        if bred.passed:
            events.append(
                candidate_event(
                    prompt, candidate, search="continuous", source="live", offline_check=check
                )
            )
        await self.bus.publish_many(events)
        if bred.passed:
            self.pending[prompt.id].add(mutant.name)
            live = events[-1]
            await self.bus.kv_put(
                str(Bucket.VARIANTS), variant_key(prompt.id, mutant.name), encode(live)
            )
        return BreedOutcome(
            prompt.id,
            bred.operator,
            mutant.name,
            bred.passed,
            bred.reason,
            bred.spend_usd,
            check,
        )
