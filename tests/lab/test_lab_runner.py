"""The runner end to end: real HTTP fake (model + judge) through ``providers.Providers``.

Every figure of the report is recomputed here from the fake's table, independently of
the lab's statistics code (Wilson's formula and the t statistic written out, the exact
sign-flip and Wilcoxon tests by enumeration, Holm by hand, the constrained best and the
Pareto front by brute force).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
from pathlib import Path

import pytest
from lab_fixtures import providers, upstream  # noqa: F401 (pytest fixtures)
from lab_upstream import JUDGE_USAGE, MODEL_USAGE, PRICES, LabUpstream
from scipy.stats import norm
from scipy.stats import t as t_dist

from promptlab.events.models import BaseEvent, EvaluationFailed, ExecutionCompleted
from promptlab.lab.experiment import Experiment, ExperimentSpec, resolve
from promptlab.lab.objectives import mean_interval, median_interval
from promptlab.lab.results import ResultsFile, read
from promptlab.lab.runner import run_experiment
from promptlab.prompts import PromptSpec
from promptlab.providers import Providers

CASES = [f"c{i}" for i in range(1, 7)]
REPEATS = 2
POINTS = [("A", "fake/cheap"), ("B", "fake/cheap"), ("A", "fake/pricey")]
JUDGE_WEIGHT, CONTAINS_WEIGHT = 0.75, 0.25


def prompt() -> PromptSpec:
    return PromptSpec.model_validate(
        {
            "id": "lab-test",
            "variables": [{"name": "code", "type": "string", "required": True}],
            "variants": [
                {"name": "A", "model": "fake/cheap", "template": "[A] {{ code }}"},
                {"name": "B", "model": "fake/cheap", "template": "[B] {{ code }}"},
            ],
        }
    )


def experiment(**overrides: object) -> Experiment:
    data: dict[str, object] = {
        "name": "runner-test",
        "prompt": "lab-test",
        "repeats": REPEATS,
        "concurrency": 4,
        "min_quality": 0.6,
        "cases": [{"id": c, "inputs": {"code": c}, "expected": f"about {c}"} for c in CASES],
        "evaluators": [
            {"kind": "judge", "model": "fake/judge", "rubric": "Grade it.", "weight": JUDGE_WEIGHT},
            {"kind": "contains", "value": "quality", "weight": CONTAINS_WEIGHT},
        ],
        "objectives": {
            "quality": {"weight": 1.0},
            "cost_usd": {"weight": 0.5},
        },
        "constraints": {"quality": ">= 0.4", "cost_usd": "<= 0.0002"},
        **overrides,
    }
    spec = ExperimentSpec.model_validate(data)
    return resolve(spec, prompt=prompt())


def fill(upstream: LabUpstream, seed: int = 7) -> dict[tuple[str, str, str], list[float]]:
    rng = random.Random(seed)
    shift = {("A", "fake/cheap"): 0.0, ("B", "fake/cheap"): 0.25, ("A", "fake/pricey"): 0.1}
    for (variant, model), case in itertools.product(POINTS, CASES):
        upstream.table[(model, f"[{variant}]", case)] = [
            round(min(1.0, rng.uniform(0.1, 0.7) + shift[(variant, model)]), 3)
            for _ in range(REPEATS)
        ]
    return upstream.table


def per_case(
    table: dict[tuple[str, str, str], list[float]], variant: str, model: str
) -> dict[str, float]:
    return {
        c: sum(JUDGE_WEIGHT * q + CONTAINS_WEIGHT for q in table[(model, f"[{variant}]", c)])
        / REPEATS
        for c in CASES
    }


def wilson_scores(values: list[float]) -> tuple[float, float, float]:
    """Wilson's interval of a mean score in [0, 1] (fewer than 10 cases: the lab's choice)."""
    n = len(values)
    mean = sum(values) / n
    z = norm.ppf(0.975)
    centre = (mean + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(mean * (1 - mean) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return mean, centre - half, centre + half


def sign_flip_p(a: list[float], b: list[float]) -> float:
    """Two-sided exact sign-flip p-value of the mean difference, over all 2**n flips."""
    d = [x - y for x, y in zip(a, b, strict=True)]
    observed = abs(sum(d))
    sums = [
        abs(sum(s * x for s, x in zip(signs, d, strict=True)))
        for signs in itertools.product((1, -1), repeat=len(d))
    ]
    return sum(1 for s in sums if s >= observed - 1e-9) / len(sums)


def paired_t_p(a: list[float], b: list[float]) -> float:
    d = [x - y for x, y in zip(a, b, strict=True)]
    n = len(d)
    mean = sum(d) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
    t = mean / (sd / math.sqrt(n))
    return float(2 * t_dist.sf(abs(t), n - 1))


def exact_wilcoxon_p(a: list[float], b: list[float]) -> float:
    d = [x - y for x, y in zip(a, b, strict=True)]
    order = sorted(range(len(d)), key=lambda i: abs(d[i]))
    ranks = {i: r + 1 for r, i in enumerate(order)}
    w = sum(ranks[i] for i in range(len(d)) if d[i] > 0)
    sums = [
        sum(r for r, s in zip(range(1, len(d) + 1), signs, strict=True) if s)
        for signs in itertools.product([0, 1], repeat=len(d))
    ]
    low = sum(1 for s in sums if s <= w) / len(sums)
    high = sum(1 for s in sums if s >= w) / len(sums)
    return min(1.0, 2 * min(low, high))


def holm_by_hand(ps: list[float]) -> list[float]:
    m = len(ps)
    order = sorted(range(m), key=lambda i: ps[i])
    out = [0.0] * m
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * ps[i]))
        out[i] = running
    return out


def call_cost(model: str) -> float:
    p = PRICES[model]
    return MODEL_USAGE[0] * p[0] + MODEL_USAGE[1] * p[1]


JUDGE_COST = JUDGE_USAGE[0] * PRICES["fake/judge"][0] + JUDGE_USAGE[1] * PRICES["fake/judge"][1]


def points_of(exp: Experiment):  # type: ignore[no-untyped-def]
    from promptlab.lab.runner import Point

    return [Point(exp.prompt.variant(v), m, {}) for v, m in POINTS]


async def test_report_figures_match_values_computed_here(
    upstream: LabUpstream, providers: Providers
) -> None:
    table = fill(upstream)
    exp = experiment()
    run = await run_experiment(exp, providers, points=points_of(exp))
    report = run.report

    assert report.trials == report.planned == len(POINTS) * len(CASES) * REPEATS
    assert report.calls == 2 * report.trials  # one model call + one judge call each
    expected_spend = sum(call_cost(m) * len(CASES) * REPEATS for _, m in POINTS)
    expected_spend += JUDGE_COST * report.trials
    assert report.spend_usd == pytest.approx(expected_spend)
    assert not report.stopped_by_budget

    means = {}
    for variant, model in POINTS:
        row = report.point(f"{variant} @ {model}")
        cases = per_case(table, variant, model)
        mean, low, high = wilson_scores(list(cases.values()))
        means[row.label] = cases
        assert row.n == len(CASES) * REPEATS and row.n_cases == len(CASES)
        assert row.quality_mean == pytest.approx(mean)
        assert row.quality_ci == pytest.approx((low, high))
        assert row.quality_ci_method == "wilson (scores)"
        trial_q = [
            JUDGE_WEIGHT * q + CONTAINS_WEIGHT
            for c in CASES
            for q in table[(model, f"[{variant}]", c)]
        ]
        tm = sum(trial_q) / len(trial_q)
        sd = math.sqrt(sum((q - tm) ** 2 for q in trial_q) / (len(trial_q) - 1))
        assert row.quality_std == pytest.approx(sd)
        assert row.success_rate == pytest.approx(sum(q >= 0.6 for q in trial_q) / len(trial_q))
        assert row.cost_usd_mean == pytest.approx(call_cost(model))
        assert row.cost_usd_total == pytest.approx(call_cost(model) * len(CASES) * REPEATS)
        assert row.eval_cost_usd == pytest.approx(JUDGE_COST * len(CASES) * REPEATS)
        assert row.tokens_mean == sum(MODEL_USAGE)
        assert row.per_case == pytest.approx(cases)
        lat = sorted(t.latency_ms for t in run.trials if t.point == row.label)
        assert row.latency_ms_p50 == pytest.approx((lat[5] + lat[6]) / 2)  # 12 values

    labels = [f"{v} @ {m}" for v, m in POINTS]
    pairs = list(itertools.combinations(labels, 2))
    t_ps = [
        paired_t_p([means[a][c] for c in CASES], [means[b][c] for c in CASES]) for a, b in pairs
    ]
    w_ps = [
        exact_wilcoxon_p([means[a][c] for c in CASES], [means[b][c] for c in CASES])
        for a, b in pairs
    ]
    f_ps = [
        sign_flip_p([means[a][c] for c in CASES], [means[b][c] for c in CASES]) for a, b in pairs
    ]
    t_holm, w_holm, f_holm = holm_by_hand(t_ps), holm_by_hand(w_ps), holm_by_hand(f_ps)
    assert [(c.a, c.b) for c in report.comparisons] == pairs
    for comp, tp, th, wp, wh, fp, fh in zip(
        report.comparisons, t_ps, t_holm, w_ps, w_holm, f_ps, f_holm, strict=True
    ):
        assert comp.test == "sign-flip (exact)"  # 6 cases: the exact test
        assert comp.p_value == pytest.approx(fp) and comp.p_holm == pytest.approx(fh)
        assert comp.p_min == pytest.approx(2 / 2**6)
        assert comp.t_p == pytest.approx(tp) and comp.t_p_holm == pytest.approx(th)
        assert comp.wilcoxon_p == pytest.approx(wp)
        assert comp.wilcoxon_p_holm == pytest.approx(wh)
        assert comp.significant == (fh < 0.05)

    # Constrained best: quality >= 0.4 and cost <= 0.0002 (fake/pricey costs 0.00025 a
    # call); the score is the weighted sum of min-max normalised objectives.
    feasible = [
        label
        for label in labels
        if report.point(label).quality_mean >= 0.4  # type: ignore[operator]
        and report.point(label).cost_usd_mean <= 0.0002
    ]  # type: ignore[operator]
    assert feasible == ["A @ fake/cheap", "B @ fake/cheap"]
    assert [r.feasible for r in report.results] == [True, True, False]
    qs = {label: report.point(label).quality_mean for label in feasible}
    cs = {label: report.point(label).cost_usd_mean for label in feasible}

    def norm(v: float, lo: float, hi: float, maximize: bool) -> float:
        if hi == lo:
            return 1.0
        return (v - lo) / (hi - lo) if maximize else (hi - v) / (hi - lo)

    score = {
        label: (
            1.0 * norm(qs[label], min(qs.values()), max(qs.values()), True)  # type: ignore[arg-type,type-var]
            + 0.5 * norm(cs[label], min(cs.values()), max(cs.values()), False)
        )
        / 1.5  # type: ignore[arg-type,type-var]
        for label in feasible
    }
    assert report.best is not None
    assert report.best.label == max(feasible, key=lambda k: score[k])
    assert report.best.score == pytest.approx(score[report.best.label])

    # Pareto front of (quality max, cost min, latency min), by brute force: cost and
    # latency count as different only beyond their 95% measurement intervals (the mean's
    # and the median's, lab.objectives), quality as measured.
    def box(label: str) -> list[tuple[float, float]]:
        trials = [t for t in run.trials if t.point == label]
        q = report.point(label).quality_mean
        cost = mean_interval([t.cost_usd for t in trials])
        lat = median_interval([t.latency_ms for t in trials])
        assert q is not None and cost is not None and lat is not None
        return [(q, q), (-cost[1], -cost[0]), (-lat[1], -lat[0])]

    def beats(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> bool:
        above = any(x[0] > y[1] for x, y in zip(a, b, strict=True))
        below = any(x[1] < y[0] for x, y in zip(a, b, strict=True))
        return above and not below

    boxes = {label: box(label) for label in labels}
    front = [a for a in labels if not any(beats(boxes[b], boxes[a]) for b in labels if b != a)]
    assert [p.label for p in report.pareto] == front

    # The evolution engine reads the judge's reasons of failing trials.
    failing = run.failing("A @ fake/cheap")
    assert failing and all(
        "fake judge read quality" in t.evaluations["judge"]["reason"] for t in failing
    )


async def test_no_point_meets_the_constraints_best_is_none_with_the_reason(
    upstream: LabUpstream, providers: Providers
) -> None:
    fill(upstream)
    exp = experiment(constraints={"quality": ">= 0.99"})
    report = (await run_experiment(exp, providers, points=points_of(exp))).report
    assert report.best is None
    assert "quality >= 0.99" in report.best_reason
    assert report.to_json()["best"] is None


async def test_judge_answers_that_cannot_be_parsed_are_errors_never_zeros(
    upstream: LabUpstream, providers: Providers
) -> None:
    table = fill(upstream)
    upstream.garble = {("[A]", "c1")}
    exp = experiment()
    report = (await run_experiment(exp, providers, points=points_of(exp)[:2])).report
    row = report.point("A @ fake/cheap")
    assert row.eval_errors == REPEATS
    assert row.n_scored == (len(CASES) - 1) * REPEATS
    assert "c1" not in row.per_case
    cases = per_case(table, "A", "fake/cheap")
    del cases["c1"]
    assert row.quality_mean == pytest.approx(sum(cases.values()) / len(cases))
    comp = report.comparisons[0]
    assert comp.n == len(CASES) - 1  # paired only on the cases both have


async def test_offline_evaluation_errors_are_published_for_the_learner_to_count(
    upstream: LabUpstream, providers: Providers
) -> None:
    fill(upstream)
    upstream.garble = {("[A]", "c1")}
    exp = experiment()
    published: list[BaseEvent] = []
    run = await run_experiment(exp, providers, points=points_of(exp)[:1], publish=published.append)
    failed = [e for e in published if isinstance(e, EvaluationFailed)]
    garbled = {t.execution_id for t in run.trials if t.eval_errors}
    assert len(garbled) == REPEATS
    assert {e.execution_id for e in failed} == garbled and len(failed) == REPEATS
    assert {e.source for e in failed} == {"offline"} and all(e.errors for e in failed)


async def test_budget_max_calls_stops_the_run_cleanly(
    upstream: LabUpstream, providers: Providers
) -> None:
    fill(upstream)
    exp = experiment(budget={"max_calls": 11})
    report = (await run_experiment(exp, providers, points=points_of(exp))).report
    assert report.stopped_by_budget
    assert report.trials == 5  # 2 calls each (model + judge): the sixth would make 12
    assert report.calls == 10
    assert sum(upstream.calls.values()) == 10


async def test_budget_max_usd_stops_before_spending_more(
    upstream: LabUpstream, providers: Providers
) -> None:
    fill(upstream)
    per_trial = call_cost("fake/cheap") + JUDGE_COST
    exp = experiment(budget={"max_usd": per_trial * 4.5}, concurrency=1)
    report = (await run_experiment(exp, providers, points=points_of(exp)[:2])).report
    assert report.stopped_by_budget
    assert report.trials == 4
    assert report.spend_usd <= per_trial * 4.5


async def test_an_interrupted_run_resumes_where_it_stopped(
    upstream: LabUpstream, providers: Providers, tmp_path: Path
) -> None:
    fill(upstream)
    exp = experiment(concurrency=1)
    path = tmp_path / "trials.jsonl"

    task: asyncio.Task[object] | None = None

    def interrupt(progress: object) -> None:
        if getattr(progress, "done", 0) >= 7 and task is not None:
            task.cancel()  # what Ctrl-C does to the run

    task = asyncio.ensure_future(
        run_experiment(
            exp, providers, points=points_of(exp), results=ResultsFile(path), progress=interrupt
        )
    )
    with pytest.raises(asyncio.CancelledError):
        await task
    header, kept = read(path)
    assert 7 <= len(kept) < 36
    assert "stopped_by_budget" not in header  # interrupted: no end line
    run = await run_experiment(
        exp, providers, points=points_of(exp), results=ResultsFile(path), resume=True
    )
    assert run.report.trials == run.report.planned == 36
    assert len({t.key for t in run.trials}) == 36
    # Every trial ran once across both runs, except at most the one in flight when the
    # first run was cancelled (its call may have reached the upstream; it runs again).
    model_calls = upstream.calls["fake/cheap"] + upstream.calls["fake/pricey"]
    assert 36 <= model_calls <= 37
    _, saved = read(path)
    assert len(saved) == 36


async def test_failed_model_calls_are_counted_not_scored(
    upstream: LabUpstream, providers: Providers
) -> None:
    fill(upstream)
    upstream.fail_models = {"fake/pricey"}
    exp = experiment()
    report = (await run_experiment(exp, providers, points=points_of(exp))).report
    row = report.point("A @ fake/pricey")
    assert row.errors == row.n == len(CASES) * REPEATS
    assert row.error_rate == 1.0 and row.quality_mean is None
    assert upstream.calls.get("fake/judge", 0) == 2 * len(CASES) * REPEATS  # no judge for failures


async def test_every_execution_is_published_offline_with_the_experiment_id(
    upstream: LabUpstream, providers: Providers, jetstream_bus: object
) -> None:
    from promptlab.events.jetstream import JetStreamBus

    assert isinstance(jetstream_bus, JetStreamBus)
    fill(upstream)
    exp = experiment()
    run = await run_experiment(
        exp, providers, points=points_of(exp)[:2], publish=jetstream_bus.publish
    )
    events = [e async for _, e, _ in jetstream_bus.read()]
    executions = [e for e in events if isinstance(e, ExecutionCompleted)]
    assert len(executions) == len(run.trials) == 2 * len(CASES) * REPEATS
    assert {e.source for e in executions} == {"offline"}
    assert {e.experiment_id for e in executions} == {"runner-test"}
    assert {e.execution_id for e in executions} == {t.execution_id for t in run.trials}
    by_id = {t.execution_id: t for t in run.trials}
    for e in executions:
        trial = by_id[e.execution_id]
        assert (e.variant, e.model, e.provider) == (trial.variant, trial.model, "fake")
        assert e.cost_usd == pytest.approx(call_cost("fake/cheap"))


async def test_a_seed_is_sent_per_repeat_and_params_reach_the_model(
    upstream: LabUpstream, providers: Providers
) -> None:
    fill(upstream)
    exp = experiment(seed=5, params={"temperature": 0.3}, variants=["A"], models=["fake/cheap"])
    await run_experiment(exp, providers)
    model_calls = [b for b in upstream.bodies if b["model"] == "cheap"]
    assert len(model_calls) == len(CASES) * REPEATS
    assert sorted({b["seed"] for b in model_calls}) == [5, 6]
    assert {b["temperature"] for b in model_calls} == {0.3}
    assert {b["messages"][0]["content"] for b in model_calls} == {f"[A] {c}" for c in CASES}
