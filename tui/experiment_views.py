"""Saved experiment reports as text: the list, the table, interval bars, a Pareto scatter.

Reports are read as the JSON that ``promptlab experiment run`` saves next to its trials
(``<name>.report.json``): the report's JSON keys are the contract, so the TUI needs no
import of the lab (nor SciPy). Plain strings, like :mod:`tui.plots`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.markup import escape

REPORT_SUFFIX = ".report.json"


@dataclass(frozen=True)
class SavedReport:
    path: Path
    data: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.data.get("experiment", self.path.name.removesuffix(REPORT_SUFFIX)))

    def row(self) -> tuple[str, ...]:
        best = self.data.get("best") or {}
        return (
            self.name,
            str(self.data.get("prompt", "?")),
            f"{self.data.get('trials', 0)}/{self.data.get('planned', 0)}",
            str(best.get("label", "none")),
            f"${float(self.data.get('spend_usd') or 0):.4f}",
            "yes" if self.data.get("stopped_by_budget") else "",
        )


LIST_COLUMNS = ("experiment", "prompt", "trials", "best", "spend", "budget stop")


def saved_reports(directory: Path) -> list[SavedReport]:
    """Every readable report under ``directory``, by name (unreadable files are skipped)."""
    out = []
    for path in sorted(directory.glob(f"*{REPORT_SUFFIX}")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and isinstance(data.get("results"), list):
            out.append(SavedReport(path, data))
    return out


def _f(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{float(value):.{digits}f}"


def interval_bar(ci: Sequence[float] | None, mean: float | None, width: int = 30) -> str:
    """``[───●───]`` on a 0..1 scale: the 95% interval with the mean marked."""
    if mean is None:
        return " " * width
    cells = [" "] * width

    def at(v: float) -> int:
        return max(0, min(width - 1, round(max(0.0, min(1.0, v)) * (width - 1))))

    if ci is not None:
        lo, hi = at(ci[0]), at(ci[1])
        for i in range(lo, hi + 1):
            cells[i] = "─"
        cells[lo], cells[hi] = "[", "]"
    cells[at(mean)] = "●"
    return "".join(cells)


def _p(value: Any) -> str:
    if value is None:
        return "-"
    v = float(value)
    return f"{v:.2g}" if v < 0.001 else f"{v:.4f}".rstrip("0").rstrip(".")


def _ci_text(ci: Sequence[float] | None, method: Any) -> str:
    if ci is None:
        return "-"
    return f"[{float(ci[0]):.3f}, {float(ci[1]):.3f}] {escape(str(method or ''))}".rstrip()


def results_text(data: dict[str, Any], width: int = 30) -> str:
    """One line per point: label, quality, interval bar on 0..1 and the interval with its
    method, success, cost, p50."""
    best = (data.get("best") or {}).get("label")
    pareto = {p.get("label") for p in data.get("pareto", [])}
    rows = data.get("results", [])
    label_w = max([len(str(r.get("label", ""))) for r in rows] + [10]) + 4
    lines = [
        f"{'variant @ model':<{label_w}} {'quality':>7}  {'0':<{width // 2}}{'1':>{width - width // 2}}"
        f"  {'success':>7} {'cost/call':>10} {'p50 ms':>8}  95% interval (method)"
    ]
    for r in rows:
        label = str(r.get("label", ""))
        mark = (" ★" if label == best else "") + (" ◆" if label in pareto else "")
        success = r.get("success_rate")
        lines.append(
            f"{escape(label + mark):<{label_w}} {_f(r.get('quality_mean')):>7}  "
            f"{interval_bar(r.get('quality_ci'), r.get('quality_mean'), width)}  "
            f"{'-' if success is None else f'{success:.0%}':>7} "
            f"{'$' + _f(r.get('cost_usd_mean'), 6):>10} {_f(r.get('latency_ms_p50'), 1):>8}  "
            f"{_ci_text(r.get('quality_ci'), r.get('quality_ci_method'))}"
        )
    return "\n".join(lines)


def comparisons_text(data: dict[str, Any]) -> str:
    lines = []
    for c in data.get("comparisons", []):
        verdict = f"significant: {c.get('better')}" if c.get("significant") else "not significant"
        lines.append(
            f"{escape(str(c.get('a')))} vs {escape(str(c.get('b')))}: mean diff "
            f"{float(c.get('mean_diff') or 0):+.3f} on {c.get('n')} cases, {c.get('test')} "
            f"p={_p(c.get('p_value'))} Holm p={_p(c.get('p_holm'))}"
            + (f" (min p {_p(c.get('p_min'))})" if c.get("p_min") is not None else "")
            + f" — {escape(verdict)}"
        )
    return "\n".join(lines) or "(one point: nothing to compare)"


def pareto_scatter(data: dict[str, Any], width: int = 50, height: int = 12) -> str:
    """Quality (up) against cost per call (right); ◆ on the Pareto front, · elsewhere.

    Points are numbered; the legend under the plot names them.
    """
    rows = [r for r in data.get("results", []) if r.get("quality_mean") is not None]
    if not rows:
        return "(no scored points)"
    pareto = {p.get("label") for p in data.get("pareto", [])}
    costs = [float(r.get("cost_usd_mean") or 0.0) for r in rows]
    quals = [float(r["quality_mean"]) for r in rows]
    c_lo, c_hi = min(costs), max(costs)
    q_lo, q_hi = min(min(quals), 0.0), max(max(quals), 1.0)
    grid = [[" "] * width for _ in range(height)]
    legend = []
    for n, (r, c, q) in enumerate(zip(rows, costs, quals, strict=True), 1):
        x = 0 if c_hi == c_lo else round((c - c_lo) / (c_hi - c_lo) * (width - 1))
        y = round((q - q_lo) / (q_hi - q_lo) * (height - 1)) if q_hi > q_lo else 0
        on_front = r.get("label") in pareto
        grid[height - 1 - y][x] = "◆" if on_front else "·"
        tag = str(n)
        for i, ch in enumerate(tag, 1):
            if x + i < width:
                grid[height - 1 - y][x + i] = ch
        legend.append(f"{n} {'◆' if on_front else '·'} {escape(str(r.get('label')))}")
    lines = [f"quality {q_hi:.2f}"]
    lines += ["        │" + "".join(row) for row in grid]
    lines.append("        └" + "─" * width)
    lines.append(f"quality {q_lo:.2f}  cost/call ${c_lo:.6f} … ${c_hi:.6f} →")
    return "\n".join([*lines, "", *legend])


def summary_text(data: dict[str, Any]) -> str:
    best = data.get("best")
    head = (
        f"{escape(str(data.get('experiment')))} (prompt {escape(str(data.get('prompt')))}): "
        f"{data.get('trials')}/{data.get('planned')} trials, {data.get('calls')} calls, "
        f"spend ${float(data.get('spend_usd') or 0):.4f}"
        + (" — stopped by budget" if data.get("stopped_by_budget") else "")
    )
    if best:
        why = f"best: {escape(str(best.get('label')))} (score {float(best.get('score') or 0):.3f})"
        why += "\n" + lead_text(best.get("lead"))
    else:
        why = f"best: none — {escape(str(data.get('best_reason', '')))}"
    found = data.get("detectable")
    if isinstance(found, dict) and found.get("note"):
        why += "\nsmallest detectable difference: " + escape(str(found["note"]))
    return head + "\n" + why


def lead_text(lead: dict[str, Any] | None) -> str:
    """Whether the best is significantly ahead of its runner-up, from the report's JSON."""
    if not lead:
        return "  (nothing to compare the best with)"
    how = (
        f"p = {_p(lead.get('p_holm'))} Holm-corrected, {escape(str(lead.get('test')))}, "
        f"{lead.get('n')} cases"
    )
    runner_up = escape(str(lead.get("runner_up")))
    if lead.get("significant"):
        return f"  significantly ahead of {runner_up} ({how})"
    return f"  best, but not significantly ahead of {runner_up} ({how})"
