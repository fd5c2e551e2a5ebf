"""``evolve_experiment`` on the real runner, through real HTTP to a fake mutator, model and judge."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from evolution_upstream import EvolutionUpstream

from bench.evolution_task import CASES
from promptlab.events.models import BaseEvent, ExecutionCompleted, VariantRegistered
from promptlab.lab.evolution import EvolutionError, evolve_experiment, live_events, resolve_spec
from promptlab.lab.experiment import Experiment, load_experiment
from promptlab.providers import Providers, ProviderSettings

PROMPT = """
id = "summarize"
[[variables]]
name = "code"
type = "string"
required = true
[[variants]]
name = "v1_simple"
model = "fake/model"
template = "Summarize this code: {{ code }}"
"""

EXPERIMENT = """
name = "evolve-summarize"
prompt = "summarize.toml"
models = ["fake/model"]
repeats = 1
concurrency = 4
min_quality = 0.99
[[evaluators]]
kind = "judge"
model = "fake/judge"
rubric = "Does the answer cover what the case needs?"
[objectives]
quality = { weight = 1.0 }
[evolution]
mutator = "fake/mutator"
search = "genetic"
population = 3
generations = 4
seed = 0
"""


def write_experiment(tmp_path: Path, extra: str = "") -> Experiment:
    (tmp_path / "summarize.toml").write_text(PROMPT)
    cases = "".join(f'[[cases]]\nid = "{c}"\ninputs = {{ code = "{c}" }}\n' for c in CASES)
    path = tmp_path / "evolve.toml"
    path.write_text(EXPERIMENT + extra + cases)
    return load_experiment(path)


@pytest.fixture
async def upstream() -> AsyncIterator[EvolutionUpstream]:
    server = EvolutionUpstream()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def providers(upstream: EvolutionUpstream) -> AsyncIterator[Providers]:
    settings = {"fake": ProviderSettings(kind="openai", api_base=upstream.base_url, max_retries=0)}
    async with Providers(settings) as client:
        yield client


def stable(report: dict[str, Any]) -> list[Any]:
    """What must replay exactly from the seed (latencies differ between runs)."""
    return [
        [
            (c["variant"], c["fitness"], c["template"], c["parents"], c["strategy"])
            for c in report["candidates"]
        ],
        [(g["best"], g["mean"], g["calls"]) for g in report["generations"]],
        [(r["kind"], r["reason"]) for r in report["rejected"]],
    ]


async def test_a_run_improves_fitness_and_every_candidate_is_an_event(
    tmp_path: Path, providers: Providers, upstream: EvolutionUpstream
) -> None:
    experiment = write_experiment(tmp_path)
    events: list[BaseEvent] = []
    run = await evolve_experiment(experiment, providers, publish=events.append)
    report = run.to_json()

    best = [g["best"] for g in report["generations"]]
    assert best == sorted(best) and best[-1] >= report["seed"]["fitness"] + 0.4
    assert report["best"][0]["fitness"] == best[-1]
    assert report["seed"]["variant"] == "v1_simple"
    assert upstream.calls["mutator"] == sum(1 for _ in upstream.mutation_requests) > 0
    assert all(r["response_format"] == {"type": "json_object"} for r in upstream.mutation_requests)

    # Lineage is complete in the events: one offline VariantRegistered per bred candidate.
    registered = {e.variant: e for e in events if isinstance(e, VariantRegistered)}
    bred = [c for c in run.result.candidates if c.generation > 0]
    assert sorted(registered) == sorted(c.name for c in bred)
    names = {c.name for c in run.result.candidates}
    for c in bred:
        event = registered[c.name]
        assert (event.origin, event.source, event.search) == ("mutation", "offline", "genetic")
        assert (event.parents, event.strategy, event.generation) == (
            list(c.parents),
            c.strategy,
            c.generation,
        )
        assert set(event.parents) <= names and event.version == c.variant.version
    offline = [e for e in events if isinstance(e, ExecutionCompleted)]
    assert offline and all(e.source == "offline" for e in offline)
    model_calls = upstream.calls["model"] + upstream.calls["judge"]
    assert report["calls"] == model_calls + upstream.calls["mutator"]

    # The best are compared with the seed by the lab's paired tests.
    top = report["best"][0]
    assert top["vs_seed"] is not None and top["vs_seed"]["n"] == len(CASES)
    cmp = top["vs_seed"]
    assert cmp["test"] == "sign-flip (exact)" and cmp["p_min"] == pytest.approx(2 / 2 ** len(CASES))
    assert top["lead"]["runner_up"].startswith("v1_simple @ ")  # the seed
    assert top["lead"]["runner_up"] in (cmp["a"], cmp["b"])
    assert top["significant"] == (cmp["p_holm"] < 0.05 and top["lead"]["mean_diff"] > 0)
    assert top["lineage"][-1] == "v1_simple"


async def test_the_same_seed_replays_the_same_search(tmp_path: Path, providers: Providers) -> None:
    experiment = write_experiment(tmp_path)
    first = await evolve_experiment(experiment, providers)
    again = await evolve_experiment(experiment, providers)
    assert stable(first.to_json()) == stable(again.to_json())
    other = await evolve_experiment(experiment, providers, spec=resolve_spec(experiment, seed=7))
    assert stable(other.to_json()) != stable(first.to_json())


@pytest.mark.parametrize("search", ["hill_climbing", "annealing", "pareto"])
async def test_every_search_improves_on_the_seed(
    tmp_path: Path, providers: Providers, search: str
) -> None:
    experiment = write_experiment(tmp_path)
    run = await evolve_experiment(
        experiment, providers, spec=resolve_spec(experiment, search=search)
    )
    assert run.best[0].fitness > run.result.seed.fitness + 0.3


async def test_invalid_mutants_are_rejected_with_reasons(
    tmp_path: Path, providers: Providers, upstream: EvolutionUpstream
) -> None:
    upstream.mutator_mode = "drop_variable"
    experiment = write_experiment(tmp_path)
    run = await evolve_experiment(
        experiment, providers, spec=resolve_spec(experiment, generations=2)
    )
    report = run.to_json()
    assert report["best"] == [] and len(report["candidates"]) == 1
    assert report["rejected"] and all(
        r["kind"] == "invalid" and r["reason"] == "drops required variable(s) 'code'"
        for r in report["rejected"]
    )
    assert upstream.calls["model"] == len(CASES)  # only the seed was ever evaluated


async def test_a_mutator_failure_is_reported(
    tmp_path: Path, providers: Providers, upstream: EvolutionUpstream
) -> None:
    upstream.mutator_mode = "error"
    experiment = write_experiment(tmp_path)
    run = await evolve_experiment(
        experiment, providers, spec=resolve_spec(experiment, generations=1)
    )
    [*failures] = run.result.rejected
    assert len(failures) == 3 and all(f.kind == "mutator_error" for f in failures)
    assert all(f.reason.startswith("fake/mutator: ") for f in failures)
    assert [c.name for c in run.result.candidates] == ["v1_simple"]


async def test_a_plain_text_answer_is_a_rejected_mutant_not_a_template(
    tmp_path: Path, providers: Providers, upstream: EvolutionUpstream
) -> None:
    upstream.mutator_mode = "plain_text"
    experiment = write_experiment(tmp_path)
    run = await evolve_experiment(
        experiment, providers, spec=resolve_spec(experiment, generations=2)
    )
    rejected = run.result.rejected
    assert rejected and all(f.kind == "mutator_error" for f in rejected)
    assert all("not the JSON object asked for" in f.reason for f in rejected)
    assert [c.name for c in run.result.candidates] == [run.result.seed.name]


async def test_the_search_stops_at_the_budget(tmp_path: Path, providers: Providers) -> None:
    experiment = write_experiment(tmp_path)
    spec = resolve_spec(experiment, max_calls=40, generations=50)
    run = await evolve_experiment(experiment, providers, spec=spec)
    assert run.result.stopped_by_budget and run.result.calls <= 40


async def test_winners_become_live_challengers_only_when_better(
    tmp_path: Path, providers: Providers
) -> None:
    experiment = write_experiment(tmp_path)
    run = await evolve_experiment(experiment, providers)
    live = live_events(run, experiment.prompt)
    assert live and all(e.source == "live" and e.origin == "mutation" for e in live)
    assert {e.variant for e in live} <= {c.name for c in run.best}


async def test_no_mutator_is_an_error(tmp_path: Path, providers: Providers) -> None:
    experiment = write_experiment(tmp_path)
    spec = experiment.spec.evolution.model_copy(update={"mutator": None})
    with pytest.raises(EvolutionError, match="no mutator"):
        await evolve_experiment(experiment, providers, spec=spec)


async def test_the_shipped_example_evolves_with_no_key() -> None:
    """config/experiments/summarize.toml: SIMULATED mutator, model and judge."""
    from promptlab.providers import default_providers

    experiment = load_experiment(Path(__file__).parents[2] / "config/experiments/summarize.toml")
    spec = resolve_spec(experiment, generations=2, population=3)
    async with Providers(default_providers()) as client:
        run = await evolve_experiment(experiment, client, spec=spec)
    bred = [c for c in run.result.candidates if c.generation > 0]
    assert bred and not [r for r in run.result.rejected if r.kind != "duplicate"]
    assert all(c.rationale.startswith("[simulated mutator]") for c in bred)


async def test_the_python_api_evolves_registered_variants(providers: Providers) -> None:
    from promptlab import Lab

    lab = Lab(client=providers)
    lab.register_variant("plain", "Summarize this code: {{ code }}", model="fake/model")
    run = await lab.evolve(
        generations=3,
        population=3,
        seed=1,
        cases=[{"id": c, "inputs": {"code": c}} for c in CASES],
        evaluators=[{"kind": "judge", "model": "fake/judge", "rubric": "covers the needs?"}],
        evolution={"mutator": "fake/mutator"},
        min_quality=0.99,
    )
    assert run.result.seed.name == "plain"
    assert run.best[0].fitness > run.result.seed.fitness
    assert run.result.lineage(run.best[0].name)[-1].name == "plain"


async def test_a_provider_without_json_mode_is_asked_again_without_it(
    tmp_path: Path, providers: Providers, upstream: EvolutionUpstream
) -> None:
    upstream.mutator_mode = "no_json_mode"
    experiment = write_experiment(tmp_path)
    run = await evolve_experiment(
        experiment, providers, spec=resolve_spec(experiment, generations=1)
    )
    assert run.best and not [r for r in run.result.rejected if r.kind == "mutator_error"]
    assert upstream.mutation_requests
    assert all("response_format" not in r for r in upstream.mutation_requests)
    # Every call counts: the refused one too.
    model_calls = upstream.calls["model"] + upstream.calls["judge"]
    assert run.result.calls == model_calls + upstream.calls["mutator"]
