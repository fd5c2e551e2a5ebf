"""What each table row and text panel says: pure functions from state to cells.

Screens only place these on widgets. Keeping the wording here means it can be tested
without running an app, and the overview and the detail screen agree on every number.

Why one module of this size: every wording of the TUI in one place, so the overview and
the detail screen agree on every number; each function is small and pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text

from promptlab.events.snapshots import VariantStats
from promptlab.tui import format as fmt
from promptlab.tui.plots import axis, density_rows, resample, sparkline, trend_series
from promptlab.tui.state import DecisionEntry, ExecutionRow, LivePrompt

LIVE_STATUSES = ("challenger",)
"""Variants that receive exploration traffic besides the champion. ``probation`` is the
status of a newly promoted champion under watch: it is the champion, not a challenger."""

OVERVIEW_NAME_WIDTH = 14
"""Variant and prompt names are cut to this many characters in the overview (the detail
screen shows them whole), so that every column fits 120 terminal columns."""

STATUS_STYLE = {
    "champion": "bold green",
    "challenger": "cyan",
    "probation": "yellow",
    "retired": "dim",
}

KIND_STYLE = {
    "promoted": "bold green",
    "rolled back": "bold yellow",
    "retired": "dim",
    "paused": "magenta",
    "resumed": "magenta",
    "rejected": "bold red",
}

Cells = tuple[str | Text, ...]

# --------------------------------------------------------------------------- overview

OVERVIEW_COLUMNS: tuple[tuple[str, str], ...] = (
    ("prompt", "Prompt"),
    ("champion", "Champion"),
    ("challengers", "Live\nchal."),
    ("traffic", "Chal.\ntraffic"),
    ("reward", "Champion\nreward"),
    ("beats", "Best\nP(beats)"),
    ("cost", "$ per 1k\ncalls"),
    ("p95", "Champ.\np95"),
    ("last", "Last promotion ↑\nor rollback ↓"),
)
"""Two-line headers keep the columns narrow: the whole row fits 120 columns, and at 80 the
table scrolls sideways with the prompt id pinned."""


def _is_challenger(v: VariantStats, champion: str | None) -> bool:
    return v.status in LIVE_STATUSES and v.variant != champion


def challengers(prompt: LivePrompt, show_archived: bool = True) -> list[VariantStats]:
    """Live challengers; the champion (also while on probation) is never one, an archived
    variant only when ``show_archived``."""
    shown = prompt.shown_variants(show_archived)
    return [v for v in shown if _is_challenger(v, prompt.champion)]


def challenger_traffic(prompt: LivePrompt) -> float | None:
    """Share of recent executions that went to challengers (None before any snapshot)."""
    if prompt.stats is None:
        return None
    champion = prompt.champion
    return sum(v.traffic_share for v in prompt.stats.variants if _is_challenger(v, champion))


def blended_cost(prompt: LivePrompt) -> float | None:
    """Mean cost of one call, weighted by traffic share (what 1,000 calls cost now)."""
    if prompt.stats is None or not prompt.stats.variants:
        return None
    weighted = [
        (v.traffic_share, v.cost_mean_usd) for v in prompt.stats.variants if v.traffic_share > 0
    ]
    total = sum(share for share, _ in weighted)
    if total <= 0:
        champion = prompt.variant(prompt.stats.champion)
        return champion.cost_mean_usd if champion is not None else None
    return sum(share * cost for share, cost in weighted) / total


def best_challenger(prompt: LivePrompt, show_archived: bool = True) -> VariantStats | None:
    candidates = [v for v in challengers(prompt, show_archived) if v.p_beats_champion is not None]
    return max(candidates, key=lambda v: v.p_beats_champion or 0.0, default=None)


def decision_label(entry: DecisionEntry | None) -> Text:
    """``05-14 13:39 ↑ empathetic-v2``: when, which way, which variant."""
    if entry is None:
        return Text(fmt.DASH, style="dim")
    arrow = "↑" if entry.kind == "promoted" else "↓"
    name = fmt.clip(entry.variant or "", OVERVIEW_NAME_WIDTH)
    return Text.assemble(
        (fmt.stamp(entry.occurred_at) + " ", "dim"),
        (f"{arrow} {name}".rstrip(), KIND_STYLE.get(entry.kind, "")),
    )


def overview_row(prompt: LivePrompt, show_archived: bool = True) -> Cells:
    """One overview row: champion, challengers and how the experiment stands (archived
    challengers counted only when ``show_archived``)."""
    champion_name = prompt.champion
    champion = prompt.variant(champion_name) if champion_name else None
    best = best_challenger(prompt, show_archived)
    live = challengers(prompt, show_archived)
    paused = " ⏸" if prompt.paused else ""
    return (
        Text(fmt.clip(prompt.prompt_id, OVERVIEW_NAME_WIDTH + 2), style="bold"),
        Text(fmt.clip(champion_name or fmt.DASH, OVERVIEW_NAME_WIDTH), style="green")
        + Text(paused, style="magenta"),
        str(len(live)) if prompt.stats is not None or live else fmt.DASH,
        fmt.pct(challenger_traffic(prompt)),
        fmt.reward_pm(*_reward(champion)),
        fmt.prob(best.p_beats_champion) if best else fmt.DASH,
        fmt.cost_per_1k(blended_cost(prompt)),
        fmt.ms(champion.latency_p95_ms if champion else None),
        decision_label(prompt.last_switch()),
    )


def _reward(v: VariantStats | None) -> tuple[float | None, float | None, float | None]:
    if v is None:
        return None, None, None
    return v.reward_mean, v.reward_low, v.reward_high


# --------------------------------------------------------------------------- detail

VARIANT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("variant", "Variant"),
    ("status", "Status"),
    ("n", "n"),
    ("reward", "Reward [interval]"),
    ("p_best", "P(best)"),
    ("share", "Traffic"),
    ("cost", "$/1k"),
    ("tokens", "Tokens"),
    ("p50", "p50"),
    ("p95", "p95"),
    ("model", "Model"),
)


def variant_row(v: VariantStats) -> Cells:
    # A draft, deprecated or archived variant gets no traffic: its lifecycle says more
    # than its role in the statistics (a champion is always active).
    status = v.lifecycle if v.lifecycle != "active" and v.status != "champion" else v.status
    return (
        Text(v.variant, style="bold" if v.status == "champion" else ""),
        Text(status, style=STATUS_STYLE.get(status, "dim")),
        fmt.count(v.executions),
        fmt.reward(v.reward_mean, v.reward_low, v.reward_high),
        fmt.prob(v.p_best),
        fmt.pct(v.traffic_share),
        fmt.cost_per_1k(v.cost_mean_usd),
        fmt.count(v.tokens_mean) if v.tokens_mean else fmt.DASH,
        fmt.ms(v.latency_p50_ms),
        fmt.ms(v.latency_p95_ms),
        v.model or fmt.DASH,
    )


def summary_line(prompt: LivePrompt, show_archived: bool = True) -> Text:
    """The line above the variants table: champion, exploration, archived variants
    hidden, and the learner's advice."""
    stats = prompt.stats
    parts = Text.assemble(("champion ", "dim"), (prompt.champion or fmt.DASH, "bold green"))
    if stats is not None:
        parts.append(f"  ·  exploration cap {fmt.pct(stats.exploration_cap)}", style="dim")
    if prompt.paused:
        parts.append("  ·  exploration PAUSED", style="bold magenta")
    if archived := prompt.archived_count():
        parts.append(
            f"  ·  {archived} archived {'shown' if show_archived else 'hidden'} (a toggles)",
            style="yellow",
        )
    if stats is not None and stats.recommendation:
        parts.append("  ·  learner: ", style="dim")
        parts.append(stats.recommendation, style="italic")
    if stats is None:
        parts.append("  ·  waiting for the learner's first stats snapshot", style="yellow")
    return parts


FEED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("time", "Time"),
    ("variant", "Variant"),
    ("status", "Status"),
    ("latency", "Latency"),
    ("cost", "Cost"),
    ("tokens", "Tokens"),
    ("feedback", "Feedback"),
)


def feed_row(row: ExecutionRow) -> Cells:
    status_style = {"ok": "green", "error": "bold red", "cancelled": "yellow"}.get(row.status, "")
    return (
        fmt.clock(row.occurred_at),
        row.variant,
        Text(row.status, style=status_style),
        fmt.ms(row.latency_ms),
        fmt.usd(row.cost_usd),
        str(row.tokens),
        _feedback(row.feedback),
    )


def _feedback(values: dict[str, bool | float]) -> Text:
    if not values:
        return Text(fmt.DASH, style="dim")
    out = Text()
    for i, (name, value) in enumerate(sorted(values.items())):
        if i:
            out.append(" ")
        if isinstance(value, bool):
            out.append(f"{name} {'✓' if value else '✗'}", style="green" if value else "red")
        else:
            out.append(f"{name} {value:g}")
    return out


def trends_text(prompt: LivePrompt, width: int) -> Text:
    """Reward and traffic share per minute of every variant, as sparklines."""
    stats = prompt.stats
    if stats is None or not stats.trend:
        return Text(
            "No per-minute trend yet: it fills in as the learner sees traffic.", style="dim"
        )
    names = [v.variant for v in stats.variants if v.status != "retired"]
    minutes, reward, share = trend_series(stats.trend, names)
    label = max((len(n) for n in names), default=4) + 1
    plot_width = max(8, width - label - 8)
    out = Text()
    span = min(len(minutes), plot_width)
    # One scale for all variants (so bars compare across rows), fitted to the data (so a
    # few points of reward difference are visible rather than flattened on 0-1).
    shown = [x for name in names for x in resample(reward[name], plot_width) if x is not None]
    low, high = (min(shown), max(shown)) if shown else (0.0, 1.0)
    if high - low < 0.02:
        low, high = max(0.0, low - 0.01), min(1.0, high + 0.01)
    out.append(f"Reward per minute, last {span} min", style="bold")
    out.append(f"  (scale {low:.2f}–{high:.2f})\n", style="dim")  # noqa: RUF001
    for name in names:
        series = resample(reward[name], plot_width)
        last = next((v for v in reversed(series) if v is not None), None)
        out.append(f"{name:<{label}}", style=_style_for(prompt, name))
        out.append(sparkline(series, low=low, high=high), style="cyan")
        out.append(f" {fmt.reward(last)}\n")
    out.append("\nTraffic share per minute", style="bold")
    out.append("  (scale 0–100%)\n", style="dim")  # noqa: RUF001
    for name in names:
        series = resample(share[name], plot_width)
        last = next((v for v in reversed(series) if v is not None), None)
        out.append(f"{name:<{label}}", style=_style_for(prompt, name))
        out.append(sparkline(series, low=0.0, high=1.0), style="magenta")
        out.append(f" {fmt.pct(last)}\n")
    return out


def _style_for(prompt: LivePrompt, variant: str) -> str:
    v = prompt.variant(variant)
    return STATUS_STYLE.get(v.status, "") if v is not None else ""


def posteriors_text(prompt: LivePrompt, width: int) -> Text:
    """Beta posterior density of each live arm on a shared reward axis."""
    routing = prompt.routing
    if routing is None or not routing.arms:
        return Text(
            "No routing snapshot yet: posteriors appear once the learner publishes one.",
            style="dim",
        )
    arms = [a for a in routing.arms if a.status != "retired"]
    label = max((len(a.variant) for a in arms), default=4) + 1
    plot_width = max(10, width - label - 16)
    low, high, rows = density_rows(arms, plot_width)
    out = Text()
    out.append("Posterior of reward (Beta), shared height scale\n", style="bold")
    for arm, (name, row) in zip(arms, rows, strict=True):
        mean = arm.alpha / (arm.alpha + arm.beta)
        out.append(f"{name:<{label}}", style=STATUS_STYLE.get(arm.status, ""))
        out.append(row, style="green" if arm.status == "champion" else "cyan")
        out.append(f" {mean:.3f} α{arm.alpha:.0f} β{arm.beta:.0f}\n", style="dim")  # noqa: RUF001
    out.append(" " * label + axis(low, high, plot_width) + "\n", style="dim")
    cap = f"exploration cap {fmt.pct(routing.exploration_cap)}"
    out.append(
        f"\nrouting snapshot v{routing.version} · {cap}" + (" · PAUSED" if routing.paused else ""),
        style="dim",
    )
    return out


def decisions_text(entries: Sequence[DecisionEntry]) -> Text:
    """The promotion and rollback log, newest first, with the evidence behind each."""
    if not entries:
        return Text("No promotions, rollbacks or pauses yet.", style="dim")
    out = Text()
    for entry in entries:
        out.append(fmt.stamp(entry.occurred_at) + "  ", style="dim")
        out.append(entry.kind.upper(), style=KIND_STYLE.get(entry.kind, "bold"))
        if entry.variant:
            out.append(f" {entry.variant}", style="bold")
        if entry.actor:
            out.append(f"  by {entry.actor}", style="dim")
        out.append("\n")
        if entry.summary:
            out.append(f"  {entry.summary}\n")
        ev = entry.evidence
        if ev is not None:
            for arm, role in ((ev.challenger, "challenger"), (ev.champion, "champion")):
                interval = arm.reward_interval
                out.append(
                    f"  {role:<10} {arm.variant:<14} n={arm.n:<6} reward "
                    f"{fmt.reward(arm.reward_mean, interval.low if interval else None, interval.high if interval else None)}\n",
                    style="dim",
                )
            facts = []
            if ev.p_better is not None:
                facts.append(f"P(better)={ev.p_better:.3f}")
            if ev.p_value is not None:
                facts.append(f"p={ev.p_value:.4f}")
            if ev.lift is not None:
                lift = f"lift={ev.lift:+.3f}"
                if ev.lift_interval is not None:
                    lift += f" [{ev.lift_interval.low:+.3f},{ev.lift_interval.high:+.3f}]"
                facts.append(lift)
            if ev.rule:
                facts.append(f"rule: {ev.rule}")
            if facts:
                out.append("  " + "  ".join(facts) + "\n", style="dim")
        out.append("\n")
    return out


def recent_decisions_text(prompts: Sequence[LivePrompt], limit: int = 8) -> Text:
    """The newest decisions across every prompt, one line each, for the overview."""
    entries = sorted(
        ((d, p.prompt_id) for p in prompts for d in p.decisions()),
        key=lambda pair: pair[0].occurred_at,
        reverse=True,
    )[:limit]
    # One line per decision, cut with an ellipsis: wrapped lines would read as new entries.
    out = Text(no_wrap=True, overflow="ellipsis")
    out.append("Recent decisions\n", style="bold")
    if not entries:
        out.append("None yet: promotions, rollbacks and pauses appear here.", style="dim")
        return out
    for entry, prompt_id in entries:
        out.append(fmt.stamp(entry.occurred_at) + "  ", style="dim")
        out.append(f"{prompt_id:<16} ", style="bold")
        out.append(f"{entry.kind:<11} ", style=KIND_STYLE.get(entry.kind, ""))
        out.append((entry.summary or entry.variant or "") + "\n")
    return out


def template_text(prompt: LivePrompt, variant: str | None, back: int = 0) -> Text:
    """The selected variant's model, lineage and system/user templates; ``back`` steps
    to older versions (0: the current one)."""
    if variant is None:
        return Text("Select a variant in the table above.", style="dim")
    registered = prompt.templates.get(variant)
    versions = prompt.versions.get(variant, [])
    shown_version = ""
    if len(versions) > 1:
        index = max(0, len(versions) - 1 - back)
        registered = versions[index]
        shown_version = (
            f"version {index + 1} of {len(versions)} ({registered.version[:12]})"
            + ("" if index == len(versions) - 1 else ", not the current one")
            + "  [ older  ] newer\n"
        )
    stats = prompt.variant(variant)
    out = Text()
    out.append(f"{variant}", style="bold")
    model = registered.model if registered else (stats.model if stats else "")
    if model:
        out.append(f"  model {model}", style="dim")
    origin = registered.origin if registered else (stats.origin if stats else "")
    parent = registered.parent if registered else (stats.parent if stats else None)
    strategy = registered.strategy if registered else (stats.strategy if stats else None)
    if origin:
        out.append(f"  origin {origin}", style="dim")
    if parent:
        out.append(f"  from {parent}" + (f" by {strategy}" if strategy else ""), style="dim")
    out.append("\n\n")
    if shown_version:
        out.append(shown_version + "\n", style="yellow")
    if registered is None:
        out.append(
            "Template not seen yet: it is shown once this variant's registration event is "
            "read (it is published when the sidecar starts or a mutation is bred).",
            style="dim",
        )
        return out
    if registered.params:
        params = ", ".join(f"{k}={v}" for k, v in sorted(registered.params.items()))
        out.append(f"params: {params}\n\n", style="dim")
    if registered.system:
        out.append("system\n", style="bold magenta")
        out.append(registered.system.rstrip() + "\n\n")
    out.append("user\n", style="bold magenta")
    out.append(registered.template.rstrip() + "\n")
    return out


# --------------------------------------------------------------------------- lineage


@dataclass(frozen=True, slots=True)
class LineageNode:
    variant: str
    label: Text
    children: tuple[LineageNode, ...]


def lineage(prompt: LivePrompt) -> list[LineageNode]:
    """Variants as a forest: parent -> child, labelled with the breeding strategy.

    A variant whose parent is unknown (not in the snapshot) is a root, so nothing is lost.
    """
    variants = prompt.variants()
    names = {v.variant for v in variants}
    by_parent: dict[str | None, list[VariantStats]] = {}
    for v in variants:
        parent = v.parent if v.parent in names and v.parent != v.variant else None
        by_parent.setdefault(parent, []).append(v)

    def build(v: VariantStats, seen: frozenset[str]) -> LineageNode:
        label = Text.assemble((v.variant, "bold"), " ", (v.status, STATUS_STYLE.get(v.status, "")))
        if v.strategy:
            label.append(f"  ← {v.strategy}", style="italic")
        if v.reward_mean is not None:
            label.append(f"  reward {fmt.reward(v.reward_mean)}", style="dim")
        kids = tuple(
            build(child, seen | {v.variant})
            for child in by_parent.get(v.variant, [])
            if child.variant not in seen
        )
        return LineageNode(v.variant, label, kids)

    return [build(v, frozenset()) for v in by_parent.get(None, [])]


def lineage_signature(
    prompt: LivePrompt,
) -> tuple[tuple[str, str | None, str, str | None, str], ...]:
    """What the tree shows; the tree is rebuilt only when this changes (keeps its cursor)."""
    return tuple(
        (v.variant, v.parent, v.status, v.strategy, fmt.reward(v.reward_mean))
        for v in prompt.variants()
    )
