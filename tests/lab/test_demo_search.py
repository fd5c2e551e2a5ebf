"""``optimize --demos`` on the real fake upstream: a fake model that learns a task from
demonstrations only when it sees both of its answers, so the search must find a set
with both labels and prove it on held-out cases with the paired test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from fake_upstream import FakeUpstream, parity

from promptlab.events.models import ExecutionCompleted
from promptlab.lab.demo_search import DemoSearchError, optimize_demos
from promptlab.lab.experiment import Experiment, ExperimentSpec, resolve
from promptlab.lab.runner import run_experiment
from promptlab.prompts import PromptSpec, VariantSpec
from promptlab.providers import Providers, ProviderSettings


@pytest.fixture
async def providers() -> AsyncIterator[Providers]:
    upstream = FakeUpstream(record=True, reply=parity)
    await upstream.start()
    settings = {"fake": ProviderSettings(kind="openai", api_base=upstream.base_url, max_retries=0)}
    async with Providers(settings) as p:
        yield p
    await upstream.stop()


def experiment(cases: int = 60) -> Experiment:
    prompt = PromptSpec.model_validate(
        {
            "id": "parity",
            "variables": [{"name": "n", "type": "string", "required": True}],
            "variants": [{"name": "base", "model": "fake/m", "template": "Number {{ n }}"}],
        }
    )
    spec = ExperimentSpec.model_validate(
        {
            "name": "parity-demos",
            "prompt": "parity",
            "concurrency": 4,
            "cases": [
                {
                    "id": f"c{i}",
                    "inputs": {"n": f"item {i}"},
                    "expected": "even" if i % 2 == 0 else "odd",
                }
                for i in range(cases)
            ],
            "evaluators": [{"kind": "exact"}],
        }
    )
    return resolve(spec, prompt=prompt)


async def test_the_search_finds_a_set_with_both_labels_and_proves_it_on_held_out_cases(
    providers: Providers,
) -> None:
    published: list[Any] = []
    outcome = await optimize_demos(
        experiment(), providers, ks=(1, 2, 4), sets_per_k=2, seed=1, publish=published.append
    )
    assert (outcome.pool, outcome.validation, outcome.held_out) == (24, 18, 18)
    tried = {label: (k, q) for label, k, q in outcome.tried}
    base_k, base_q = tried["base"]
    assert base_k == 0 and base_q is not None and base_q < 1.0  # always "even": the evens right
    assert all(q == base_q for label, (k, q) in tried.items() if k == 1)  # one label cannot teach
    assert all(q == 1.0 for label, (k, q) in tried.items() if k >= 2)  # diverse sets do

    winner = outcome.winner
    assert winner is not None and winner.demos is not None
    assert winner.demos.select == "fixed" and len(winner.demos.pool) == 2  # fewest that win
    assert {d.answer for d in winner.demos.pool} == {"even", "odd"}
    pool_inputs = {f"item {i}" for i in range(60)}
    assert {d.variables["n"] for d in winner.demos.pool} <= pool_inputs
    base_held = outcome.held_out_point("base")
    won_held = outcome.held_out_point(winner.name)
    assert base_held is not None and won_held is not None
    held = list(base_held.per_case)
    shown = {"c" + d.variables["n"].split()[-1] for d in winner.demos.pool}
    assert len(held) == 18 and not shown & set(held)  # no held-out case was a demonstration
    evens = sum(1 for case in held if int(case[1:]) % 2 == 0)
    assert won_held.quality_mean == 1.0 and base_held.quality_mean == evens / 18
    comparison = outcome.comparison
    assert comparison is not None and comparison.n == 18 and comparison.significant
    assert "held out" in outcome.summary() and "significant" in outcome.summary()
    assert any(isinstance(e, ExecutionCompleted) and e.source == "offline" for e in published)

    # The winner, pasted into the prompt file, is a valid variant that runs its set.
    toml = outcome.winner_toml()
    import tomllib

    parsed = VariantSpec.model_validate(tomllib.loads(toml)["variants"][0])
    assert parsed.version == winner.version
    run = await run_experiment(
        experiment(), providers, points=None, cases=experiment().cases[:4]
    )  # the base alone, for contrast
    assert run.report.results[0].quality_mean == 0.5


async def test_too_few_cases_are_refused_with_a_reason(providers: Providers) -> None:
    with pytest.raises(DemoSearchError, match="too few"):
        await optimize_demos(experiment(cases=5), providers)
