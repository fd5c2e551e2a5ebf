"""Run an experiment: points x cases x repeats, real calls, scored, recorded, published.

    report = await run_experiment(experiment, client, publish=publisher.publish)

Every trial is one real model call through the :class:`~lab.client.ModelClient`
(``providers.Providers``), scored by the experiment's evaluators, appended to the
results file as it finishes, and published as an ``ExecutionCompleted`` with
``source="offline"`` and the experiment id. The budget is checked before every trial;
the run stops cleanly at it. The returned :class:`~lab.report.Report` carries every
point's per-case scores, and :class:`RunResult` the trials with the evaluators' reasons.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from promptlab.events.models import BaseEvent, EvaluationFailed, ExecutionCompleted
from promptlab.lab.budget import Budget
from promptlab.lab.client import ModelClient, error_kind, output_text
from promptlab.lab.datasets import DatasetError, dataset_demos, read_dataset
from promptlab.lab.evaluators import EvalContext, Panel, build
from promptlab.lab.experiment import CaseSpec, Experiment
from promptlab.lab.report import Report, build_report
from promptlab.lab.results import ResultsFile, Trial, spend
from promptlab.prompts import Renderer, RenderError, VariableError, VariantSpec
from promptlab.prompts.demo_pool import DemoPool, pool_from_examples
from promptlab.prompts.demos import Demo

Publish = Callable[[BaseEvent], "Awaitable[Any] | None"]


@dataclass(frozen=True)
class Point:
    """One combination to evaluate: a variant on a model with parameters."""

    variant: VariantSpec
    model: str
    params: dict[str, Any] = field(default_factory=dict)
    label: str = ""

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", f"{self.variant.name} @ {self.model}")

    @property
    def version(self) -> str:
        """The variant's version with these params (the content hash of what runs)."""
        if self.params == self.variant.params and self.model == self.variant.model:
            return self.variant.version
        blob = json.dumps([self.variant.version, self.model, self.params], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def default_points(experiment: Experiment) -> list[Point]:
    """Every chosen variant on every chosen model (or its own), params merged."""
    points = []
    for name in experiment.variant_names():
        variant = experiment.prompt.variant(name)
        for model in experiment.spec.models or [variant.model]:
            points.append(Point(variant, model, {**variant.params, **experiment.spec.params}))
    return points


@dataclass(frozen=True, slots=True)
class Progress:
    done: int
    total: int
    spend_usd: float
    elapsed_s: float

    @property
    def eta_s(self) -> float | None:
        if not self.done or self.done >= self.total:
            return None
        return self.elapsed_s / self.done * (self.total - self.done)


@dataclass
class RunResult:
    """What one run produced: the report and every trial (with evaluator reasons)."""

    report: Report
    trials: list[Trial]

    def failing(self, label: str) -> list[Trial]:
        """Trials of one point below their case's ``min_quality`` (or unscored)."""
        return [t for t in self.trials if t.point == label and not t.success]


def header(experiment: Experiment, points: Sequence[Point]) -> dict[str, Any]:
    return {
        "name": experiment.id,
        "prompt": experiment.prompt.id,
        "spec": experiment.spec.model_dump(mode="json", by_alias=True),
        "points": [p.label for p in points],
        "planned": len(points) * len(experiment.cases) * experiment.spec.repeats,
        "started_at": time.time(),
    }


async def run_experiment(
    experiment: Experiment,
    client: ModelClient,
    *,
    points: Sequence[Point] | None = None,
    cases: Sequence[CaseSpec] | None = None,
    publish: Publish | None = None,
    results: ResultsFile | None = None,
    resume: bool = False,
    progress: Callable[[Progress], None] | None = None,
    budget: Budget | None = None,
) -> RunResult:
    """Run ``experiment`` (or the given ``points`` / ``cases`` of it) and report.

    ``budget`` may be shared by several runs (``optimize`` does): the run stops when it
    is spent. With ``results`` every trial is appended as it ends; ``resume`` keeps the
    trials already in the file and runs only the missing ones.
    """
    spec = experiment.spec
    points = list(points) if points is not None else default_points(experiment)
    cases = list(cases) if cases is not None else experiment.cases
    panel = build(spec.evaluators, client)
    budget = budget or Budget(spec.budget.max_calls, spec.budget.max_usd)
    done: list[Trial] = []
    if results is not None:
        done = results.open(header(experiment, points), resume=resume)
        labels = {p.label for p in points}
        done = [t for t in done if t.point in labels]
        calls, usd = spend(done)
        budget.restore(calls, usd, len(done))
    finished = {t.key for t in done}
    jobs = [
        (point, case, repeat)
        for repeat in range(spec.repeats)
        for case in cases
        for point in points
        if (point.label, case.id, repeat) not in finished
    ]
    total = len(jobs) + len(done)
    trials = list(done)
    runner = _Runner(experiment, client, panel, publish, Renderer())
    started = time.perf_counter()
    queue: asyncio.Queue[tuple[Point, CaseSpec, int]] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)

    async def worker() -> None:
        while not queue.empty() and not budget.stopped:
            point, case, repeat = queue.get_nowait()
            reserved = 1 + panel.calls
            if not budget.try_start(reserved):
                return
            trial = await runner.trial(point, case, repeat)
            budget.finish(reserved, trial.calls, trial.spend_usd)
            trials.append(trial)
            if results is not None:
                results.append(trial)
            if progress is not None:
                progress(
                    Progress(len(trials), total, budget.spent_usd, time.perf_counter() - started)
                )

    try:
        await asyncio.gather(*(worker() for _ in range(min(spec.concurrency, len(jobs) or 1))))
        if results is not None:
            results.finish(stopped_by_budget=budget.stopped and len(trials) < total)
    finally:
        if results is not None:
            results.close()
    report = build_report(
        trials,
        experiment=experiment.id,
        prompt=experiment.prompt.id,
        objectives=spec.objective_list(),
        constraints=spec.constraint_list(),
        planned=total,
        stopped_by_budget=budget.stopped and len(trials) < total,
        test=spec.test,
        alpha=spec.alpha,
        order=[p.label for p in points],
    )
    return RunResult(report, trials)


class _Runner:
    def __init__(
        self,
        experiment: Experiment,
        client: ModelClient,
        panel: Panel,
        publish: Publish | None,
        renderer: Renderer,
    ) -> None:
        self.experiment = experiment
        self.client = client
        self.panel = panel
        self.publish = publish
        self.renderer = renderer
        self._pools: dict[str, DemoPool] = {}

    def demos(self, variant: VariantSpec, values: dict[str, Any]) -> list[Demo]:
        """A variant's demonstrations for one case: from its inline pool, the prompt's
        ``[[examples]]`` or a dataset (:func:`lab.datasets.dataset_demos`, as the learner
        publishes it live), retrieved by BM25 (``embedding_model`` is a live path). The
        production pool lives with the learner: offline, such a variant runs without
        demonstrations."""
        spec = variant.demos
        if spec is None or spec.pool == "production":
            return []
        pool = self._pools.get(variant.version)
        if pool is None:
            if spec.pool == "examples":
                demos = pool_from_examples(self.experiment.prompt.examples)
            elif isinstance(spec.pool, str):
                rows = read_dataset(self.experiment.datasets_path(), spec.pool)
                demos = dataset_demos(spec.pool, rows)
            else:
                demos = [Demo.build(d.variables, d.answer) for d in spec.pool]
            pool = self._pools[variant.version] = DemoPool(demos)
        return pool.select(spec, values)

    async def trial(self, point: Point, case: CaseSpec, repeat: int) -> Trial:
        spec = self.experiment.spec
        prompt = self.experiment.prompt
        trial = Trial(
            point=point.label,
            variant=point.variant.name,
            version=point.version,
            model=point.model,
            params=point.params,
            case=case.id,
            repeat=repeat,
            execution_id=uuid.uuid4().hex,
            min_quality=case.min_quality if case.min_quality is not None else spec.min_quality,
        )
        try:
            values = prompt.variables_validator(case.inputs)
            demos = self.demos(point.variant, values)
            messages = self.renderer.render(prompt, point.variant, values, demos)
        except (VariableError, RenderError, DatasetError) as exc:
            trial.status, trial.error_kind = "error", f"render: {exc}"[:200]
            return trial
        body = {**point.params, "messages": messages}
        if spec.seed is not None and "seed" not in body:
            body["seed"] = spec.seed + repeat
        started = time.perf_counter()
        try:
            completion = await self.client.complete(point.model, body, timeout_s=spec.timeout_s)
        except Exception as exc:  # every failed call is recorded once, by kind (no secrets)
            trial.status, trial.error_kind = "error", error_kind(exc)
            trial.latency_ms = (time.perf_counter() - started) * 1000.0
            await self._publish(trial)
            return trial
        trial.output = output_text(completion.data)
        trial.latency_ms = float(completion.latency_ms)
        trial.prompt_tokens = int(completion.prompt_tokens)
        trial.completion_tokens = int(completion.completion_tokens)
        trial.cost_usd = float(completion.cost_usd or 0.0)
        verdict = await self.panel.evaluate(
            EvalContext(trial.output, case.expected, dict(case.inputs))
        )
        trial.evaluations = {n: r.to_dict() for n, r in verdict.results.items()}
        trial.quality = verdict.quality
        trial.eval_errors = verdict.errors
        trial.eval_cost_usd = verdict.cost_usd
        trial.eval_calls = verdict.calls
        await self._publish(trial)
        return trial

    async def _publish(self, trial: Trial) -> None:
        if self.publish is None:
            return
        provider = trial.model.partition("/")[0]
        event = ExecutionCompleted(
            execution_id=trial.execution_id,
            prompt_id=self.experiment.prompt.id,
            variant=trial.variant,
            version=trial.version,
            model=trial.model,
            provider=provider,
            latency_ms=trial.latency_ms,
            input_tokens=trial.prompt_tokens,
            output_tokens=trial.completion_tokens,
            cost_usd=trial.cost_usd,
            status="ok" if trial.status == "ok" else "error",
            error_kind=trial.error_kind,
            source="offline",
            experiment_id=self.experiment.id,
        )
        events: list[BaseEvent] = [event]
        if trial.eval_errors:  # counted by the learner, like online evaluation errors
            events.append(
                EvaluationFailed.of(
                    trial.execution_id, event.prompt_id, list(trial.eval_errors), source="offline"
                )
            )
        for each in events:
            outcome = self.publish(each)
            if inspect.isawaitable(outcome):
                await outcome
