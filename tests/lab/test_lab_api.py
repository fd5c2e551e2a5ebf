"""``from promptlab import Lab, TestCase``: the engine the CLI uses, for notebooks."""

from __future__ import annotations

import subprocess
import sys

import pytest
from lab_fixtures import providers, upstream  # noqa: F401 (pytest fixtures)
from lab_upstream import LabUpstream

from promptlab import Lab, TestCase
from promptlab.providers import Providers


def test_import_promptlab_stays_light() -> None:
    code = "import promptlab, sys; print(sorted(m for m in ('promptlab.lab', 'scipy', 'optuna', 'aiohttp') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


async def test_registered_variants_run_against_a_real_upstream(
    upstream: LabUpstream, providers: Providers
) -> None:
    for case in ("one", "two", "three"):
        upstream.table[("fake/cheap", "[short]", case)] = [0.2, 0.4]
        upstream.table[("fake/cheap", "[long]", case)] = [0.9, 0.8]
    lab = Lab(client=providers)
    lab.register_variant("short", "[short] {{ text }}", model="fake/cheap")
    lab.register_variant("long", "[long] {{ text }}", model="fake/cheap")
    report = await lab.run_experiment(
        cases=[TestCase(id=c, inputs={"text": c}) for c in ("one", "two", "three")],
        repeats=2,
        evaluators=[
            {"kind": "judge", "model": "fake/judge", "rubric": "Grade.", "reference": False}
        ],
        constraints={"quality": ">= 0.5"},
    )
    assert report.best is not None and report.best.variant == "long"
    assert report.point("long @ fake/cheap").quality_mean == pytest.approx(0.85)
    assert report.point("short @ fake/cheap").quality_mean == pytest.approx(0.3)
    assert report.case_scores("short @ fake/cheap") == pytest.approx(
        {"one": 0.3, "two": 0.3, "three": 0.3}
    )
    (comparison,) = report.comparisons
    assert comparison.n == 3 and comparison.mean_diff == pytest.approx(-0.55)
    # Three cases, "long" ahead on each: the exact sign-flip test says p = 2/8 = 0.25,
    # the smallest p three cases can give; not significant, and the report says so.
    assert comparison.test == "sign-flip (exact)"
    assert comparison.p_value == pytest.approx(0.25) == comparison.p_min
    assert not comparison.significant
    assert report.best.significant is False
    assert report.best.lead is not None and report.best.lead.runner_up == "short @ fake/cheap"
    assert "best, but not significantly ahead of short @ fake/cheap" in report.to_markdown()
    assert {p.variant for p in report.pareto} <= {"long", "short"}
    assert "| long @ fake/cheap ★" in report.to_markdown()
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(RuntimeError, match="pandas"):
            report.to_frame()
    else:  # pragma: no cover - pandas is optional
        assert list(report.to_frame()["variant"]) == ["short", "long"]


async def test_optimize_searches_params_on_the_simulated_provider() -> None:
    lab = Lab()
    lab.register_variant("plain", "Summarize this code: {{ code }}", model="simulated/summarizer")
    lab.register_variant(
        "structured",
        "Give the purpose, key logic and edge cases of this code:\n{{ code }}",
        model="simulated/summarizer",
    )
    outcome = await lab.optimize(
        cases=[
            TestCase(
                id="f",
                inputs={"code": "def factorial(n): ..."},
                expected="Computes the factorial of n recursively",
            )
        ],
        evaluators=[{"kind": "judge", "model": "simulated/judge", "rubric": "Complete?"}],
        optimize={"trials": 5, "params": {"temperature": {"low": 0.0, "high": 1.0}}},
        budget={"max_calls": 8},
    )
    assert outcome.sampler == "TPE"  # one objective: quality
    assert outcome.stopped_by_budget and outcome.calls <= 8
    assert len(outcome.trail) == 4  # 2 calls a trial (model + judge)
    # One case cannot tell trials apart: the winner is not significantly ahead, and says so.
    assert outcome.best is not None and outcome.lead is not None
    assert outcome.lead.n == 1 and outcome.lead.p_value == 1.0 and not outcome.lead.significant
    assert "winner, but not significantly ahead of" in outcome.summary()
    assert outcome.to_json()["significant"] is False
