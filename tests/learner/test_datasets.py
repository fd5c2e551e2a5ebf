"""Datasets from traffic: filters, dedupe, seeded and stratified samples, the files
(``promptlab dataset create|list|show|export``), and an experiment that reads one."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from learner_factories import at, correction, deliveries, execution, feedback, registered

from promptlab.api import Lab
from promptlab.cli import main
from promptlab.events.models import BaseEvent, CapturedContent
from promptlab.lab.datasets import DatasetError, dataset_info, read_dataset
from promptlab.lab.experiment import ExperimentFileError, ExperimentSpec, resolve
from promptlab.learner.datasets import (
    DatasetQuery,
    DatasetQueryError,
    create_dataset,
    dataset_cases,
)
from promptlab.learner.projection.reward import RewardRule
from promptlab.learner.projection.transaction import Projection
from promptlab.learner.storage.store import Store
from promptlab.prompts import PromptSpec


def call(execution_id: str, text: str, answer: str, seconds: float, **kw: Any) -> Any:
    content = CapturedContent(output=answer, variables={"text": text})
    return execution(execution_id, prompt="sentiment", content=content, seconds=seconds, **kw)


def label(execution_id: str, good: bool, seconds: float) -> Any:
    return feedback(execution_id, good, seconds=seconds)


def stream() -> list[BaseEvent]:
    """Ten calls: p1..p6 answered "positive" (p1..p4 rated good, p5 bad, p6 unrated),
    n1..n3 answered "negative" (n1 good, n2 bad then corrected, n3 by variant b),
    d1 repeats p1's input with a bad rating."""
    events: list[BaseEvent] = [
        registered("sentiment", "a", champion=True),
        registered("sentiment", "b"),
    ]
    for i in range(1, 7):
        events.append(call(f"p{i}", f"great film {i}", "positive", seconds=i * 10))
    for i, good in enumerate((True, True, True, True, False), start=1):
        events.append(label(f"p{i}", good, seconds=100 + i))
    events += [
        call("n1", "awful film", "negative", seconds=200),
        call("n2", "dull film", "positive", seconds=210),
        call("n3", "bad film", "negative", seconds=220, variant="b"),
        call("d1", "great film 1", "negative", seconds=230),
        label("n1", True, seconds=240),
        label("n2", False, seconds=241),
        correction("n2", "negative", seconds=242),
        label("n3", True, seconds=243),
        label("d1", False, seconds=244),
    ]
    return events


@pytest.fixture
async def filled(store: Store) -> Store:
    projection = Projection(
        store, consumer="learner", rewards={"sentiment": RewardRule(feedback="thumbs_up")}
    )
    await projection.load()
    await projection.apply(deliveries(stream()))
    return store


async def ids(store: Store, **kw: Any) -> list[str]:
    return [c["id"] for c in await dataset_cases(store, DatasetQuery("sentiment", **kw))]


async def test_filters(filled: Store) -> None:
    assert await ids(filled) == ["p1", "p2", "p3", "p4", "p5", "p6", "n1", "n2", "n3", "d1"]
    assert await ids(filled, min_reward=1.0) == ["p1", "p2", "p3", "p4", "n1", "n2", "n3"]
    assert await ids(filled, max_reward=0.0) == ["p5", "d1"]
    assert await ids(filled, variant="b") == ["n3"]
    assert await ids(filled, since=at(200), until=at(230)) == ["n1", "n2", "n3"]
    # d1 repeats p1's input with a worse reward: dedupe keeps p1
    assert await ids(filled, dedupe=True) == ["p1", "p2", "p3", "p4", "p5", "p6", "n1", "n2", "n3"]


async def test_expected_is_a_good_answer_else_judge_only(filled: Store) -> None:
    cases = {c["id"]: c for c in await dataset_cases(filled, DatasetQuery("sentiment"))}
    assert cases["p1"] == {
        "id": "p1",
        "inputs": {"text": "great film 1"},
        "expected": "positive",
        "min_quality": None,
    }
    assert cases["n2"]["expected"] == "negative"  # the correction, not the model's answer
    assert cases["p5"]["expected"] is None and cases["p6"]["expected"] is None


async def test_samples_are_seeded_and_stratified_samples_balanced(filled: Store) -> None:
    first = await ids(filled, sample=4, seed=3)
    assert len(first) == 4 and first == await ids(filled, sample=4, seed=3)
    assert len({tuple(await ids(filled, sample=4, seed=s)) for s in range(6)}) > 1
    # By reward: the correction (n2), the good (p1..p4, n1, n3), the poor (p5, d1) and
    # the unrated (p6) take turns, so four cases hold one of each.
    for seed in range(5):
        chosen = set(await ids(filled, sample=4, stratify_by="reward", seed=seed))
        assert {"n2", "p6"} <= chosen
        assert len(chosen & {"p5", "d1"}) == 1
        assert len(chosen & {"p1", "p2", "p3", "p4", "n1", "n3"}) == 1
    # By a variable: each distinct text is a stratum, so no input repeats before all
    # nine distinct ones are in.
    by_text = await dataset_cases(
        filled, DatasetQuery("sentiment", sample=9, stratify_by="text", seed=1)
    )
    assert len({c["inputs"]["text"] for c in by_text}) == 9


async def test_bad_queries_are_refused(filled: Store, tmp_path: Path) -> None:
    with pytest.raises(DatasetQueryError, match="not both"):
        DatasetQuery("sentiment", min_reward=0.5, max_reward=0.9)
    with pytest.raises(DatasetQueryError, match="sample"):
        DatasetQuery("sentiment", stratify_by="reward")
    with pytest.raises(DatasetQueryError, match="capture"):
        await create_dataset(filled, tmp_path, "empty", DatasetQuery("other"))
    with pytest.raises(DatasetError, match="not a dataset name"):
        await create_dataset(filled, tmp_path, "../escape", DatasetQuery("sentiment"))
    await create_dataset(filled, tmp_path, "once", DatasetQuery("sentiment"))
    with pytest.raises(DatasetError, match="exists"):
        await create_dataset(filled, tmp_path, "once", DatasetQuery("sentiment"))


def sentiment_prompt() -> PromptSpec:
    return PromptSpec.model_validate(
        {
            "id": "sentiment",
            "variables": [{"name": "text", "type": "string", "required": True}],
            "variants": [{"name": "a", "model": "simulated/echo", "template": "{{ text }}"}],
        }
    )


async def test_cli_and_experiment_read_the_same_files(
    filled: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if filled.schema is not None:
        pytest.skip("the CLI reads the configured store; one backend is enough here")
    config = tmp_path / "promptlab.toml"
    config.write_text(f'[storage]\nurl = "{filled.url}"\n')
    folder = tmp_path / "datasets"

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["dataset", *args, "--dir", str(folder), "--config", str(config)])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    code, out, _ = await asyncio.to_thread(
        run, "create", "good", "--prompt", "sentiment", "--min-reward", "1", "--dedupe"
    )
    assert code == 0 and "7 cases of prompt sentiment (7 with an expected answer)" in out, out
    with pytest.raises(SystemExit) as refused:
        await asyncio.to_thread(
            run, "create", "bad", "--prompt", "sentiment", "--min-reward", "1", "--max-reward", "0"
        )
    assert refused.value.code == 2 and "not allowed with" in capsys.readouterr().err
    code, out, _ = await asyncio.to_thread(run, "list")
    assert code == 0 and out.splitlines()[2].split()[:4] == ["good", "sentiment", "7", "7"]
    code, out, _ = await asyncio.to_thread(run, "show", "good", "--cases", "1")
    assert code == 0 and '"min_reward": 1.0' in out and '"id": "p1"' in out
    code, out, _ = await asyncio.to_thread(run, "export", "good")
    lines = [json.loads(line) for line in out.splitlines()]
    assert [c["id"] for c in lines] == ["p1", "p2", "p3", "p4", "n1", "n2", "n3"]
    assert lines == read_dataset(folder, "good")
    assert dataset_info(folder, "good").filters == {
        "prompt_id": "sentiment",
        "min_reward": 1.0,
        "dedupe": True,
        "good_reward": 0.8,
        "seed": 0,
    }
    code, _, err = await asyncio.to_thread(run, "export", "missing")
    assert code == 1 and "no dataset 'missing'" in err

    experiment_file = tmp_path / "exp.toml"
    experiment_file.write_text('name = "x"\nprompt = "sentiment"\ndataset = "good"\n')
    spec = ExperimentSpec.model_validate(
        {"name": "x", "prompt": "sentiment", "dataset": "good", "datasets_dir": "datasets"}
    )
    experiment = resolve(spec, source=str(experiment_file), prompt=sentiment_prompt())
    assert [c.id for c in experiment.cases] == [c["id"] for c in lines]
    assert experiment.cases[5].expected == "negative"
    assert [c.id for c in Lab().dataset("good", datasets_dir=folder)] == [c["id"] for c in lines]
    made = await Lab().create_dataset(
        "by-api", "sentiment", storage_url=filled.url, datasets_dir=folder, variant="b"
    )
    assert [(c.id, c.expected) for c in made] == [("n3", "negative")]
    missing = ExperimentSpec.model_validate(
        {"name": "x", "prompt": "sentiment", "dataset": "nope", "datasets_dir": "datasets"}
    )
    with pytest.raises(ExperimentFileError, match="no dataset 'nope'"):
        resolve(missing, source=str(experiment_file), prompt=sentiment_prompt())


async def test_create_says_when_the_database_cannot_be_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "promptlab.toml"
    config.write_text('[storage]\nurl = "postgresql+asyncpg://nobody@127.0.0.1:1/none"\n')
    code = await asyncio.to_thread(
        main,
        [
            "dataset",
            "create",
            "x",
            "--prompt",
            "p",
            "--dir",
            str(tmp_path),
            "--config",
            str(config),
        ],
    )
    assert code == 1
    assert "cannot read the learner's database" in capsys.readouterr().err


def test_the_cli_default_directory_is_the_labs() -> None:
    from promptlab.commands.dataset import DEFAULT_DIR
    from promptlab.lab.datasets import DEFAULT_DATASETS_DIR

    assert DEFAULT_DIR == DEFAULT_DATASETS_DIR
