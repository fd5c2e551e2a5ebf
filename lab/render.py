"""A report as Markdown or as rich terminal tables."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from promptlab.lab.comparisons import format_p, lead_text

if TYPE_CHECKING:
    from rich.console import Console


class Report(Protocol):
    """What rendering reads of a :class:`lab.report.Report` (not imported: ``report``
    imports this module for ``to_markdown``, and packages here have no import cycles)."""

    @property
    def experiment(self) -> str: ...
    @property
    def prompt(self) -> str: ...
    @property
    def results(self) -> Sequence[Any]: ...
    @property
    def comparisons(self) -> Sequence[Any]: ...
    @property
    def best(self) -> Any: ...
    @property
    def best_reason(self) -> str: ...
    @property
    def pareto(self) -> Sequence[Any]: ...
    @property
    def calls(self) -> int: ...
    @property
    def spend_usd(self) -> float: ...
    @property
    def trials(self) -> int: ...
    @property
    def planned(self) -> int: ...
    @property
    def stopped_by_budget(self) -> bool: ...
    @property
    def alpha(self) -> float: ...
    @property
    def detectable(self) -> Any: ...


def _f(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:.6f}".rstrip("0").rstrip(".")


def _ci(ci: tuple[float, float] | None, method: str | None) -> str:
    """An interval with the method that made it: ``[0.541, 0.721] bootstrap BCa``."""
    return "-" if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}] {method or ''}".rstrip()


def _success(rate: float | None, ci: tuple[float, float] | None, method: str | None) -> str:
    if rate is None:
        return "-"
    if ci is None:
        return f"{rate:.0%}"
    return f"{rate:.0%} [{ci[0]:.0%}, {ci[1]:.0%}] {method or ''}".rstrip()


def _p(value: float | None) -> str:
    return format_p(value)


RESULT_HEADERS = (
    "variant @ model",
    "n",
    "quality",
    "95% CI (method)",
    "std",
    "success (95% CI)",
    "cost/call",
    "cost total",
    "p50 ms",
    "p95 ms",
    "tokens",
    "errors",
    "eval err",
    "score",
)


def result_rows(report: Report) -> list[list[str]]:
    pareto = {p.label for p in report.pareto}
    best = report.best.label if report.best else None
    rows = []
    for r in report.results:
        mark = (" ★" if r.label == best else "") + (" ◆" if r.label in pareto else "")
        rows.append(
            [
                r.label + mark,
                str(r.n),
                _f(r.quality_mean),
                _ci(r.quality_ci, r.quality_ci_method),
                _f(r.quality_std),
                _success(
                    r.success_rate,
                    r.success_ci,
                    r.success_ci_method,
                ),
                _usd(r.cost_usd_mean),
                _usd(r.cost_usd_total),
                _f(r.latency_ms_p50, 1),
                _f(r.latency_ms_p95, 1),
                _f(r.tokens_mean, 0),
                str(r.errors),
                str(r.eval_errors),
                _f(r.score) if r.feasible else "infeasible",
            ]
        )
    return rows


COMPARISON_HEADERS = (
    "a",
    "b",
    "cases",
    "mean a-b",
    "test",
    "p",
    "p (Holm)",
    "min p",
    "significant",
)


def comparison_rows(report: Report) -> list[list[str]]:
    return [
        [
            c.a,
            c.b,
            str(c.n),
            f"{c.mean_diff:+.3f}",
            c.test,
            _p(c.p_value),
            _p(c.p_holm),
            _p(c.p_min),
            ("yes: " + (c.better or "")) if c.significant else "no",
        ]
        for c in report.comparisons
    ]


def summary_lines(report: Report) -> list[str]:
    lines = [
        f"experiment {report.experiment} (prompt {report.prompt}): {report.trials}/{report.planned}"
        f" trials, {report.calls} calls, spend {_usd(report.spend_usd)}"
        + (" — stopped by budget" if report.stopped_by_budget else ""),
    ]
    if report.best is not None:
        b = report.best
        lines.append(
            f"best: {b.label} (quality {_f(b.quality_mean)}, cost/call {_usd(b.cost_usd_mean)}, "
            f"p50 {_f(b.latency_ms_p50, 1)} ms, score {b.score:.3f}): {b.reason}"
        )
        lines.append("  " + lead_text(b.lead, report.alpha))
    else:
        lines.append(f"best: none — {report.best_reason}")
    lines.append(
        "Pareto front (quality, cost, latency): " + ", ".join(p.label for p in report.pareto)
    )
    if report.detectable is not None:
        lines.append(f"smallest detectable difference: {report.detectable.note}")
    return lines


def _md_table(headers: tuple[str, ...], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(out)


def markdown(report: Report) -> str:
    parts = [
        f"# Experiment {report.experiment}",
        "\n\n".join(summary_lines(report)),
        "## Results (★ best, ◆ Pareto front)",
        _md_table(RESULT_HEADERS, result_rows(report)),
        f"## Paired comparisons (Holm-corrected, alpha {report.alpha:g})",
        _md_table(COMPARISON_HEADERS, comparison_rows(report))
        if report.comparisons
        else "(one point: nothing to compare)",
    ]
    return "\n\n".join(parts) + "\n"


def print_report(report: Report, console: Console | None = None) -> None:
    """Print the report as rich tables."""
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=max(console.width, 180))
    table = Table(title="Results (★ best, ◆ Pareto front)", title_justify="left")
    for h in RESULT_HEADERS:
        table.add_column(h, justify="left" if h == "variant @ model" else "right")
    for row in result_rows(report):
        table.add_row(*row)
    console.print(table)
    if report.comparisons:
        comp = Table(
            title=f"Paired comparisons (Holm-corrected, alpha {report.alpha:g})",
            title_justify="left",
        )
        for h in COMPARISON_HEADERS:
            comp.add_column(h)
        for row in comparison_rows(report):
            comp.add_row(*row)
        console.print(comp)
    for line in summary_lines(report):
        console.print(line, highlight=False)


def plain(report: Report) -> str:
    """The rich output rendered to plain text (for logs and tests)."""
    from rich.console import Console

    console = Console(width=200, record=True, color_system=None, file=io.StringIO())
    print_report(report, console)
    return console.export_text()
