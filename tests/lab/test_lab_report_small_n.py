"""A report built from trials at small n: what it claims, in JSON and in text."""

from __future__ import annotations

import pytest

from promptlab.lab.objectives import Objective
from promptlab.lab.render import plain
from promptlab.lab.report import Report, build_report
from promptlab.lab.results import Trial


def trials(table: dict[str, list[float]], repeats: int = 1) -> list[Trial]:
    out = []
    for point, scores in table.items():
        for case, q in enumerate(scores):
            for r in range(repeats):
                out.append(
                    Trial(
                        point=f"{point} @ m/x", variant=point, version="v", model="m/x",
                        params={}, case=f"c{case}", repeat=r, execution_id=f"{point}{case}{r}",
                        quality=q, min_quality=0.5, cost_usd=0.001,
                    )
                )  # fmt: skip
    return out


def report(table: dict[str, list[float]], **kwargs: object) -> Report:
    return build_report(
        trials(table),
        experiment="small",
        prompt="p",
        objectives=[Objective("quality")],
        constraints=[],
        **kwargs,  # type: ignore[arg-type]
    )


def test_two_cases_where_one_variant_always_wins_are_not_significant() -> None:
    got = report({"A": [1.0, 1.0], "B": [0.0, 0.0]})
    (cmp,) = got.comparisons
    assert cmp.test == "sign-flip (exact)"
    assert cmp.p_value == pytest.approx(0.5) and cmp.p_min == pytest.approx(0.5)
    assert not cmp.significant and cmp.better is None
    assert got.best is not None and got.best.label == "A @ m/x"
    assert got.best.significant is False and got.best.lead is not None
    assert got.best.lead.runner_up == "B @ m/x" and got.best.lead.mean_diff == pytest.approx(1.0)
    text = plain(got)
    assert "best, but not significantly ahead of B @ m/x (p = 0.5 Holm-corrected" in text
    assert "with 2 cases no p-value below 0.5 is possible" in text
    assert got.detectable is not None and got.detectable.difference is None
    assert "it needs 6 cases" in got.detectable.note
    for row in got.results:  # 2 of 2 and 0 of 2: Wilson, never [1, 1] or [0, 0]
        assert row.quality_ci_method == "wilson" and row.success_ci_method == "wilson"
        low, high = row.quality_ci  # type: ignore[misc]
        assert 0.0 <= low < high <= 1.0 and high - low > 0.5
    assert "[0.342, 1.000] wilson" in text  # scipy's Wilson interval of 2 of 2


@pytest.mark.parametrize("test", ["auto", "permutation", "t", "wilcoxon"])
def test_every_interval_of_a_bounded_metric_lies_inside_its_bounds(test: str) -> None:
    table = {
        "flat": [0.8] * 7,  # no spread at all
        "high": [1.0, 0.98, 0.99, 1.0, 0.97, 1.0, 0.99],  # near the bound
        "wide": [0.0, 1.0, 0.1, 0.9, 0.5, 0.05, 0.95],
    }
    got = report(table, test=test)
    for row in got.results:
        for ci in (row.quality_ci, row.success_ci):
            assert ci is not None and 0.0 <= ci[0] <= ci[1] <= 1.0
        assert row.quality_ci[0] < row.quality_ci[1]  # type: ignore[index]
    assert all(c.p_value is not None and c.p_value > 0 for c in got.comparisons)


def test_a_saved_report_round_trips_and_an_older_one_still_loads() -> None:
    got = report({"A": [0.9, 0.8, 0.7, 0.95, 0.85, 0.9], "B": [0.5, 0.6, 0.4, 0.55, 0.5, 0.6]})
    again = Report.model_validate_json(got.model_dump_json())
    assert again == got
    old = got.to_json()
    for key in ("detectable", "test"):
        old.pop(key)
    old["best"] = {k: v for k, v in old["best"].items() if k not in ("significant", "lead")}
    for row in old["results"]:
        for key in ("quality_ci_method", "success_ci", "success_ci_method"):
            row.pop(key)
    for c in old["comparisons"]:
        c.pop("p_min")
        c.pop("sd_diff")
        c["test"] = "paired t"
    loaded = Report.model_validate(old)
    assert loaded.best is not None and loaded.best.lead is None
    assert "best: A @ m/x" in plain(loaded)
