"""``promptlab experiment plan``: cases and repeats a difference needs, with no model call."""

from __future__ import annotations

import json
import math
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from promptlab.lab import stats
from promptlab.lab.experiment import load_experiment
from promptlab.lab.plan import DEFAULT_SD, plan, spread_from_trials
from promptlab.lab.results import ResultsFile, Trial

ROOT = Path(__file__).resolve().parents[2]


def promptlab(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # No OPENAI_API_KEY and nothing listening on the base URL: a model call would fail.
    env = {"PATH": str(Path(sys.executable).parent), "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    return subprocess.run(
        [sys.executable, "-m", "promptlab", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "config", tmp_path / "config")
    exp = tmp_path / "config" / "experiments" / "summarize.toml"
    # Real models whose key is not set: `experiment run` would refuse, `plan` needs none.
    text = exp.read_text().replace(
        'models = ["simulated/summarizer", "simulated/summarizer-mini"]',
        'models = ["openai/gpt-4o-mini"]',
    )
    (tmp_path / "config" / "experiments" / "real.toml").write_text(text)
    return tmp_path


def trial(point: str, case: str, repeat: int, quality: float) -> Trial:
    return Trial(
        point=point, variant=point.split(" @ ")[0], version="v", model="m/x", params={},
        case=case, repeat=repeat, execution_id=f"{point}{case}{repeat}", quality=quality,
    )  # fmt: skip


def test_plan_calls_no_model_and_says_its_spread_is_assumed(workdir: Path) -> None:
    done = promptlab(
        workdir, "experiment", "plan", "config/experiments/real.toml", "--difference", "0.1"
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    # 2 variants x 1 model: one comparison at alpha 0.05; the exact test needs 6 cases.
    assert "2 points, 1 comparisons" in out and "at least 6 cases" in out
    assert "assumed: no trials to measure it from" in out
    level_cases = stats.cases_needed(0.1, DEFAULT_SD, 0.05)
    assert re.search(rf"^ +\d+ +{level_cases} +[\d,]+$", out, re.M)  # a row: repeats, cases, calls
    assert not (workdir / ".promptlab").exists()  # nothing run, nothing written

    as_json = promptlab(
        workdir, "experiment", "plan", "config/experiments/real.toml",
        "--difference", "0.1", "--sd", "0.2", "--json",
    )  # fmt: skip
    data = json.loads(as_json.stdout)
    assert data["spread"]["source"] == "given by --sd"
    (row,) = data["rows"]  # no repeat-to-repeat spread known: only the file's repeats
    assert row["repeats"] == 3 and row["cases"] == stats.cases_needed(0.1, 0.2, 0.05)
    assert row["calls"] == row["cases"] * 3 * 2 * 2  # repeats x points x (model + judge)
    assert stats.power(0.1, 0.2, row["cases"], 0.05) >= 0.8


@pytest.mark.parametrize(
    "args, message",
    [
        (["--difference", "0"], "difference must be in (0, 1]"),
        (["--difference", "0.1", "--sd", "-1"], "must be positive"),
        (["--difference", "0.1", "--power", "1.5"], "--power"),
        (["--difference", "0.1", "--results", "nope.jsonl"], "no such results file"),
    ],
)
def test_bad_flags_are_reported(workdir: Path, args: list[str], message: str) -> None:
    done = promptlab(workdir, "experiment", "plan", "config/experiments/real.toml", *args)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def test_the_spread_of_saved_trials_sets_cases_for_each_number_of_repeats(workdir: Path) -> None:
    # Two points, 8 cases, 2 repeats: B is about 0.1 above A, by case, plus repeat noise.
    base = [0.3, 0.5, 0.4, 0.6, 0.35, 0.55, 0.45, 0.5]
    lift = [0.1, 0.15, 0.05, 0.1, 0.2, 0.0, 0.1, 0.12]
    trials = []
    for c, q in enumerate(base):
        for r, (ea, eb) in enumerate([(0.04, 0.03), (-0.02, -0.05)]):
            trials.append(trial("A @ m/x", f"c{c}", r, q + ea))
            trials.append(trial("B @ m/x", f"c{c}", r, q + lift[c] + eb))
    path = workdir / "pilot.jsonl"
    results = ResultsFile(path)
    results.open({"name": "pilot"}, resume=False)
    for t in trials:
        results.append(t)
    results.close()

    spread = spread_from_trials(trials, "pilot")
    assert spread is not None and spread.repeats == 2
    diffs = []
    for c in range(len(base)):
        a = statistics.mean(t.quality for t in trials if t.case == f"c{c}" and t.point[0] == "A")  # type: ignore[misc]
        b = statistics.mean(t.quality for t in trials if t.case == f"c{c}" and t.point[0] == "B")  # type: ignore[misc]
        diffs.append(a - b)
    assert spread.sd == pytest.approx(statistics.stdev(diffs))
    # pooled within-cell variance: A cells (0.06**2 / 2), B cells (0.08**2 / 2)
    assert spread.within_sd == pytest.approx(math.sqrt((0.06**2 + 0.08**2) / 4))
    assert spread.at(2) == pytest.approx(spread.sd)
    assert spread.at(10) < spread.at(2)  # more repeats average the repeat noise out

    experiment = load_experiment(workdir / "config" / "experiments" / "real.toml")
    result = plan(experiment, 0.05, trials=trials, trials_source="pilot")
    by_repeats = {row.repeats: row for row in result.rows}
    assert set(by_repeats) == {1, 2, 3, 5, 10}
    for row in result.rows:
        assert row.cases == stats.cases_needed(0.05, spread.at(row.repeats), 0.05)
    assert by_repeats[1].cases >= by_repeats[10].cases >= 6

    done = promptlab(
        workdir, "experiment", "plan", "config/experiments/real.toml",
        "--difference", "0.05", "--results", "pilot.jsonl",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "measured in pilot.jsonl: 8 cases, 2 repeats" in done.stdout
    assert f"repeat-to-repeat spread {spread.within_sd:.3f}" in done.stdout
