"""``promptlab experiment run|show|list`` and ``optimize`` on the shipped example (simulated)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from promptlab.events.embedded import NatsServerProcess
from promptlab.events.models import ExecutionCompleted

ROOT = Path(__file__).resolve().parents[2]


def promptlab(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PROMPTLAB_", "OPENAI_"))}
    return subprocess.run(
        [sys.executable, "-m", "promptlab", *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "config", tmp_path / "config")
    return tmp_path


def test_the_shipped_example_runs_with_no_key_and_finds_the_better_variant(workdir: Path) -> None:
    done = promptlab(
        workdir,
        "experiment",
        "run",
        "config/experiments/summarize.toml",
        "--json",
        "report.json",
        "--markdown",
        "report.md",
        "--no-events",
    )
    assert done.returncode == 0, done.stderr
    report = json.loads((workdir / "report.json").read_text())
    for key in (
        "results",
        "comparisons",
        "best",
        "pareto",
        "calls",
        "spend_usd",
        "stopped_by_budget",
    ):
        assert key in report
    rows = {r["label"]: r for r in report["results"]}
    big, mini = "simulated/summarizer", "simulated/summarizer-mini"
    for key in (
        "variant",
        "model",
        "n",
        "quality_mean",
        "quality_ci",
        "success_rate",
        "cost_usd_mean",
        "latency_ms_p50",
    ):
        assert key in rows[f"v1_simple @ {big}"]
    assert {r["n"] for r in rows.values()} == {30}  # 10 cases x 3 repeats, 2 variants x 2 models
    v1, v2 = rows[f"v1_simple @ {big}"], rows[f"v2_structured @ {big}"]
    assert v2["quality_mean"] > v1["quality_mean"]
    assert rows[f"v1_simple @ {mini}"]["cost_usd_mean"] < v1["cost_usd_mean"]  # simulated prices
    assert len(report["comparisons"]) == 6
    comparison = next(
        c for c in report["comparisons"] if (c["a"], c["b"]) == (v1["label"], v2["label"])
    )
    assert {"a", "b", "p_value", "p_holm", "significant", "test"} <= comparison.keys()
    assert comparison["significant"] and comparison["better"] == v2["label"]
    # 10 cases: the exact sign-flip test, whose smallest p is 2 / 2**10.
    assert {c["test"] for c in report["comparisons"]} == {"sign-flip (exact)"}
    assert comparison["p_min"] == pytest.approx(2 / 2**10) and comparison["p_value"] > 0
    for row in rows.values():  # every interval inside [0, 1], named by its method
        for ci, method in (
            (row["quality_ci"], row["quality_ci_method"]),
            (row["success_ci"], row["success_ci_method"]),
        ):
            assert 0.0 <= ci[0] <= ci[1] <= 1.0 and method == "wilson (scores)"  # 10 cases
        assert row["quality_ci"][0] <= row["quality_mean"] <= row["quality_ci"][1]
    assert report["best"]["variant"] == "v2_structured" and report["best"]["model"] == big
    assert report["best"]["significant"] is True
    assert report["best"]["lead"]["runner_up"] == f"v2_structured @ {mini}"
    assert report["detectable"]["difference"] > 0 and report["detectable"]["cases"] == 10
    assert "significantly ahead of" in done.stdout and "smallest detectable" in done.stdout
    assert {"variant", "model"} <= report["pareto"][0].keys()
    assert report["calls"] == 240 and not report["stopped_by_budget"]
    assert "| variant @ model |" in (workdir / "report.md").read_text()
    assert "Paired comparisons" in done.stdout

    results = workdir / ".promptlab" / "experiments" / "summarize-variants.jsonl"
    shown = promptlab(workdir, "experiment", "show", str(results), "--json")
    assert shown.returncode == 0, shown.stderr
    rebuilt = json.loads(shown.stdout)
    assert rebuilt["results"] == report["results"]
    assert rebuilt["comparisons"] == report["comparisons"]
    again = promptlab(workdir, "experiment", "show", "report.json", "--markdown")
    assert again.returncode == 0 and again.stdout == (workdir / "report.md").read_text()

    listed = promptlab(workdir, "experiment", "list")
    assert (
        listed.returncode == 0
        and "summarize-variants" in listed.stdout
        and "120/120" in listed.stdout
    )


def test_a_run_publishes_offline_executions_to_nats(
    workdir: Path, nats_server: NatsServerProcess
) -> None:
    exp = workdir / "config" / "experiments" / "small.toml"
    exp.write_text(
        (workdir / "config" / "experiments" / "summarize.toml")
        .read_text()
        .replace("repeats = 3", "repeats = 1")
        .replace('cases_file = "summarize_cases.jsonl"', "")
    )
    done = promptlab(
        workdir, "experiment", "run", str(exp), env={"PROMPTLAB_NATS__URL": nats_server.url}
    )
    assert done.returncode == 0, done.stderr

    async def executions() -> list[ExecutionCompleted]:
        from promptlab.events.jetstream import JetStreamBus

        bus = JetStreamBus(url=nats_server.url)
        await bus.start()
        try:
            return [e async for _, e, _ in bus.read() if isinstance(e, ExecutionCompleted)]
        finally:
            await bus.close()

    found = asyncio.run(executions())
    assert len(found) == 4  # one case (inline), two variants x two models, one repeat
    assert {(e.source, e.experiment_id, e.prompt_id) for e in found} == {
        ("offline", "summarize-variants", "summarize")
    }


def test_budget_stop_and_resume_from_the_command_line(workdir: Path) -> None:
    exp = workdir / "config" / "experiments" / "summarize.toml"
    exp.write_text(exp.read_text().replace("max_calls = 500", "max_calls = 40"))
    first = promptlab(workdir, "experiment", "run", str(exp), "--json", "-", "--no-events")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["stopped_by_budget"] and report["calls"] == 40 and report["trials"] == 20
    results = workdir / ".promptlab" / "experiments" / "summarize-variants.jsonl"
    shown = json.loads(promptlab(workdir, "experiment", "show", str(results), "--json").stdout)
    assert shown["stopped_by_budget"] and shown["trials"] == 20 and shown["planned"] == 120
    exp.write_text(exp.read_text().replace("max_calls = 40", "max_calls = 500"))
    second = promptlab(
        workdir, "experiment", "run", str(exp), "--json", "-", "--resume", "--no-events"
    )
    report = json.loads(second.stdout)
    assert report["trials"] == 120 and report["calls"] == 240 and not report["stopped_by_budget"]


def test_a_missing_provider_key_stops_before_any_call(workdir: Path) -> None:
    exp = workdir / "config" / "experiments" / "summarize.toml"
    exp.write_text(
        exp.read_text().replace(
            '"simulated/summarizer", "simulated/summarizer-mini"', '"openai/gpt-4o-mini"'
        )
    )
    done = promptlab(workdir, "experiment", "run", str(exp), "--no-events")
    assert done.returncode == 2
    assert "openai/gpt-4o-mini: needs $OPENAI_API_KEY" in done.stderr
    assert not (workdir / ".promptlab" / "experiments").exists()


def test_a_broken_experiment_file_prints_every_problem(workdir: Path) -> None:
    bad = workdir / "config" / "experiments" / "bad.toml"
    bad.write_text('name = "x"\nprompt = "summarize"\nrepeats = 0\nconcurrency = 0\n')
    done = promptlab(workdir, "experiment", "run", str(bad), "--no-events")
    assert done.returncode == 2
    assert f"{bad}: repeats:" in done.stderr and f"{bad}: concurrency:" in done.stderr


def test_optimize_prints_the_trail_and_the_winner(workdir: Path) -> None:
    done = promptlab(
        workdir,
        "optimize",
        "config/experiments/summarize.toml",
        "--trials",
        "4",
        "--json",
        "--no-events",
    )
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert outcome["sampler"] == "NSGA-II"  # three objectives
    assert len(outcome["trail"]) == 4
    assert all("temperature" in t["params"] for t in outcome["trail"])
    assert outcome["best"] is None or outcome["best"]["quality_mean"] >= 0.8
    if outcome["best"] is not None:
        assert outcome["lead"]["test"] == "sign-flip (exact)"  # 6 cases a trial
        assert outcome["significant"] == outcome["lead"]["significant"]
    assert done.stderr.count("trial ") >= 4


def test_optimize_demos_on_the_shipped_example_splits_searches_and_reports(workdir: Path) -> None:
    done = promptlab(
        workdir,
        "optimize",
        "config/experiments/summarize.toml",
        "--demos",
        "--k",
        "1,2",
        "--no-events",
    )
    assert done.returncode == 0, done.stderr
    assert "cases: 4 pool, 3 validation, 3 held out" in done.stdout
    assert "validation quality 0." in done.stdout and "winner:" in done.stdout
    refused = promptlab(workdir, "optimize", "config/experiments/summarize.toml", "--demos",
                        "--k", "two", "--no-events")  # fmt: skip
    assert refused.returncode == 2 and "--k takes comma-separated integers" in refused.stderr
