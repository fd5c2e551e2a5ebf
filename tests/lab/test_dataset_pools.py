"""A variant with ``demos = { pool = "<dataset>" }`` offline: the lab shows the same
demonstrations a sidecar serves from the pool the learner publishes (one rule,
``lab.datasets.dataset_demos``), through the Lab API and an experiment file alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fake_upstream import FakeUpstream

from promptlab import Lab
from promptlab.lab.datasets import DatasetInfo, read_dataset, write_dataset
from promptlab.lab.experiment import ExperimentFileError, load_experiment
from promptlab.learner.demo_pools import dataset_snapshot
from promptlab.prompts import PromptSpec, Renderer
from promptlab.providers import Providers, ProviderSettings, Redactor
from promptlab.sidecar.demos import DemoPools

CASES = [
    {"id": "a", "inputs": {"text": "a warm lovely film"}, "expected": "positive"},
    {"id": "b", "inputs": {"text": "judge only"}, "expected": None},
    {"id": "c", "inputs": {"text": "a cold dull film"}, "expected": "negative"},
    {"id": "d", "inputs": {"text": "a bright kind story"}, "expected": "positive"},
    {"id": "e", "inputs": {"text": "a grim sour story"}, "expected": "negative"},
]


def prompt() -> PromptSpec:
    return PromptSpec.model_validate(
        {
            "id": "sentiment",
            "variables": [{"name": "text", "type": "string", "required": True}],
            "variants": [
                {"name": "plain", "model": "fake/m", "template": "Text: {{ text }}"},
                {"name": "shown", "model": "fake/m", "template": "Text: {{ text }}",
                 "demos": {"pool": "labelled", "k": 2}},
            ],
        }
    )  # fmt: skip


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    server = FakeUpstream(record=True)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def providers(upstream: FakeUpstream) -> AsyncIterator[Providers]:
    settings = {"fake": ProviderSettings(kind="openai", api_base=upstream.base_url, max_retries=0)}
    async with Providers(settings) as p:
        yield p


def write(directory: Path) -> None:
    info = DatasetInfo(
        name="labelled", prompt_id="sentiment", created_at=datetime.now(UTC), cases=5
    )
    write_dataset(directory, info, CASES)


async def served_live(directory: Path, text: str) -> list[dict[str, Any]]:
    """The messages a sidecar sends for ``text``, from the pool the learner publishes."""
    spec = prompt()
    pools = DemoPools(Redactor())
    pools.apply(dataset_snapshot("sentiment", "labelled", read_dataset(directory, "labelled"), 1))
    variant = spec.variant("shown")
    values = spec.variables_validator({"text": text})
    return Renderer().render(spec, variant, values, await pools.choose(spec, variant, values))


def sent(upstream: FakeUpstream) -> dict[str, list[dict[str, Any]]]:
    """The messages the upstream received, by the call's own input (the last message)."""
    out = {}
    for r in upstream.requests:
        messages = [{k: m[k] for k in ("role", "content")} for m in r.body["messages"]]
        if len(messages) > 1:
            out[messages[-1]["content"]] = messages
    return out


async def test_the_lab_api_shows_a_dataset_pool_as_a_sidecar_serves_it(
    tmp_path: Path, upstream: FakeUpstream, providers: Providers
) -> None:
    write(tmp_path / "datasets")
    lab = Lab(client=providers)
    lab.use_prompt(prompt())
    texts = ["a warm story", "a dull cold night", "kind and bright"]
    experiment = lab.experiment(
        cases=[{"id": f"q{i}", "inputs": {"text": t}} for i, t in enumerate(texts)],
        datasets_dir=str(tmp_path / "datasets"),
        variants=["shown"],
    )
    result = await lab.run(experiment)
    assert all(t.status == "ok" for t in result.trials)
    received = sent(upstream)
    assert len(received) == len(texts)
    for text in texts:
        live = await served_live(tmp_path / "datasets", text)
        assert received[f"Text: {text}"] == live
        shown = [m["content"] for m in live if m["role"] == "assistant"]
        assert sorted(shown) == ["negative", "positive"]  # the dataset's labels, diverse


async def test_an_experiment_file_reads_the_pool_beside_it_and_refuses_a_missing_one(
    tmp_path: Path, upstream: FakeUpstream, providers: Providers
) -> None:
    (tmp_path / "sentiment.toml").write_text(
        'id = "sentiment"\n[[variables]]\nname = "text"\ntype = "string"\nrequired = true\n'
        '[[variants]]\nname = "shown"\nmodel = "fake/m"\ntemplate = "Text: {{ text }}"\n'
        'demos = { pool = "labelled", k = 2 }\n'
    )
    file = tmp_path / "exp.toml"
    file.write_text(
        'name = "pools"\nprompt = "sentiment.toml"\ndatasets_dir = "data"\n'
        '[[cases]]\nid = "q"\ninputs = { text = "a warm story" }\n'
    )
    with pytest.raises(ExperimentFileError, match=r"variant shown: demos.pool.*no dataset"):
        load_experiment(file)

    write(tmp_path / "data")
    result = await Lab(client=providers).run(file)
    assert [t.status for t in result.trials] == ["ok"]
    assert sent(upstream)["Text: a warm story"] == await served_live(
        tmp_path / "data", "a warm story"
    )
