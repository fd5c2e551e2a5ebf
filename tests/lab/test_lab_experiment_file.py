"""Experiment files: the shipped example and the issue's shape load; problems name their field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from promptlab.lab.experiment import ExperimentFileError, load_experiment

ROOT = Path(__file__).resolve().parents[2]

ISSUE_SHAPE = """
name = "summarize-variants"
prompt = "summarize"
variants = ["v1_simple", "v2_structured"]
models = ["openai/gpt-4o-mini"]
repeats = 3
concurrency = 8
cases_file = "cases.jsonl"
[budget]
max_calls = 500
max_usd = 1.0
[[cases]]
id = "factorial"
inputs = { code = "def factorial(n): return 1 if n == 0 else n * factorial(n - 1)" }
expected = "recursive factorial"
min_quality = 0.7
[[evaluators]]
kind = "contains"
value = "factorial"
weight = 0.3
[[evaluators]]
kind = "judge"
model = "openai/gpt-4o-mini"
rubric = "Is the summary correct and complete? 1 = fully, 0 = not at all."
weight = 0.7
[objectives]
quality = { weight = 1.0, direction = "maximize" }
cost_usd = { weight = 0.5, direction = "minimize" }
latency_ms = { weight = 0.3, direction = "minimize" }
[constraints]
quality = ">= 0.85"
cost_usd = "<= 0.005"
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "config" / "prompts", tmp_path / "prompts")
    (tmp_path / "experiments").mkdir()
    return tmp_path / "experiments"


def test_the_shipped_example_loads() -> None:
    exp = load_experiment(ROOT / "config" / "experiments" / "summarize.toml")
    assert exp.prompt.id == "summarize"
    assert exp.variant_names() == ["v1_simple", "v2_structured"]
    assert len(exp.cases) >= 10 and exp.cases[0].id == "factorial"
    assert [e.kind for e in exp.spec.evaluators] == ["length", "judge"]


def test_the_issue_shape_works_as_shown(config: Path) -> None:
    (config / "cases.jsonl").write_text(
        '{"id": "add", "inputs": {"code": "a + b"}, "expected": "adds"}\n'
    )
    (config / "x.toml").write_text(ISSUE_SHAPE)
    exp = load_experiment(config / "x.toml")
    assert [c.id for c in exp.cases] == ["factorial", "add"]
    assert exp.cases[0].min_quality == 0.7
    assert exp.spec.budget.max_calls == 500 and exp.spec.budget.max_usd == 1.0
    assert [str(c) for c in exp.spec.constraint_list()] == ["quality >= 0.85", "cost_usd <= 0.005"]
    assert [(o.metric, o.direction) for o in exp.spec.objective_list()] == [
        ("quality", "maximize"),
        ("cost_usd", "minimize"),
        ("latency_ms", "minimize"),
    ]


def test_without_cases_the_prompt_examples_are_the_cases(config: Path) -> None:
    (config / "x.toml").write_text('name = "e"\nprompt = "summarize"\n')
    exp = load_experiment(config / "x.toml")
    assert [c.id for c in exp.cases] == ["fibonacci", "clamp"]
    assert exp.cases[0].expected and "Fibonacci" in exp.cases[0].expected


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        (
            'name = "e"\nprompt = "summarize"\nrepeats = 0\n',
            "repeats",
            "greater than or equal to 1",
        ),
        (
            'name = "e"\nprompt = "summarize"\nvariants = ["nope"]\n',
            "variants[0]",
            "no variant 'nope'",
        ),
        ('name = "e"\nprompt = "missing"\n', "prompt", "no prompt 'missing'"),
        ('name = "e"\nprompt = "summarize"\nmodels = ["gpt"]\n', "models", "provider/model"),
        (
            'name = "e"\nprompt = "summarize"\n[constraints]\nquality = "high"\n',
            "constraints",
            "operator",
        ),
        (
            'name = "e"\nprompt = "summarize"\n[objectives]\nspeed = {}\n',
            "objectives",
            "unknown objective",
        ),
        (
            'name = "e"\nprompt = "summarize"\n[[evaluators]]\nkind = "judge"\nrubric = "r"\n',
            "evaluators[0].judge.model",
            "required",
        ),
        ('name = "e"\nprompt = "summarize"\ncolour = 1\n', "colour", "unknown key"),
        ('name = "e"\nprompt = "summarize"\ncases_file = "none.jsonl"\n', "(file)", "cannot read"),
    ],
)
def test_problems_name_the_field(config: Path, text: str, field: str, message: str) -> None:
    (config / "x.toml").write_text(text)
    with pytest.raises(ExperimentFileError) as info:
        load_experiment(config / "x.toml")
    assert any(p.field.startswith(field) and message in p.message for p in info.value.problems), (
        info.value
    )


def test_a_bad_cases_line_names_its_line(config: Path) -> None:
    (config / "c.jsonl").write_text('{"id": "a"}\nnot json\n{"inputs": {}}\n')
    (config / "x.toml").write_text('name = "e"\nprompt = "summarize"\ncases_file = "c.jsonl"\n')
    with pytest.raises(ExperimentFileError) as info:
        load_experiment(config / "x.toml")
    fields = [p.field for p in info.value.problems]
    assert fields[0] == "line 2" and fields[1].startswith("line 3")
