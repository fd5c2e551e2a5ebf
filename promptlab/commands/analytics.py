"""`promptlab analytics ID [--interval hour|day|week|month] [--from --to] [--json]`.

Per variant and period, from the learner's database (no NATS needed): executions,
unique subjects, latency p50/p95, success and error rates, tokens, cost, quality and
satisfaction, and the change of each against the previous period; then the most used
values of the variables the prompt lets analytics record, per period for every variant
together and for each variant (see :mod:`learner.storage.periods` for the definitions).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

from promptlab.cli import add_config_option, moment
from promptlab.commands.tables import figure, print_table

if TYPE_CHECKING:
    from promptlab.learner.storage.periods import Interval, PeriodReport
    from promptlab.settings import Settings

INTERVALS = ("hour", "day", "week", "month")
"""As :data:`learner.storage.periods.INTERVALS` (not imported: ``--help`` stays light)."""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "analytics",
        help="per variant and period: volume, latency, errors, cost, quality and trends",
        description="Analytics of one prompt per variant and period, in event time (UTC).",
    )
    parser.add_argument("id", help="prompt id")
    parser.add_argument("--interval", choices=INTERVALS, default="day", help="period length")
    parser.add_argument(
        "--from", dest="start", type=moment, metavar="TIME", help="ISO date or time (UTC)"
    )
    parser.add_argument("--to", dest="end", type=moment, metavar="TIME", help="exclusive end")
    parser.add_argument(
        "--top", type=_count, default=5, metavar="N", help="most used values shown per variable"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    add_config_option(parser)
    parser.set_defaults(handler=run)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count (0, 1, 2, ...)")
    return value


async def collect(
    settings: Settings,
    prompt_id: str,
    interval: Interval,
    start: datetime | None = None,
    end: datetime | None = None,
    top: int = 5,
) -> PeriodReport:
    from promptlab.reads import open_queries

    async with open_queries(settings) as queries:
        return await queries.analytics(prompt_id, interval, start, end, top)


def _trend(value: Any, spec: str) -> str:
    return "" if value is None else format(value, "+" + spec)


ANALYTICS_COLUMNS = ("PERIOD", "VARIANT", "CALLS", "SUBJ", "P50 ms", "P95 ms", "ERR", "TOKENS",
                     "COST $", "QUALITY", "SATISF", "TREND")  # fmt: skip
ANALYTICS_FIGURES = frozenset(ANALYTICS_COLUMNS) - {"PERIOD", "VARIANT", "TREND"}
"""The ``analytics`` columns aligned right (numbers)."""


def _period_row(f: Any) -> tuple[object, ...]:
    """One period of one variant: its figures and what changed since the period before."""
    trend = f.trends
    changes = ", ".join(
        text
        for text in (
            _trend(trend.get("executions"), ".0f") and f"calls {trend['executions']:+.0f}",
            _trend(trend.get("quality"), ".3f") and f"quality {trend['quality']:+.3f}",
            _trend(trend.get("error_rate"), ".1%") and f"errors {trend['error_rate']:+.1%}",
        )
        if text
    )
    return (
        f.start.strftime("%Y-%m-%d %H:%M"),
        f.variant,
        f.executions,
        figure(f.unique_subjects, "d"),
        figure(f.latency_p50_ms, ".0f"),
        figure(f.latency_p95_ms, ".0f"),
        figure(f.error_rate, ".1%"),
        f.tokens,
        f"{f.cost_usd:.5f}",
        figure(f.quality),
        figure(f.satisfaction, ".0%"),
        changes,
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    report = asyncio.run(collect(settings, args.id, args.interval, args.start, args.end, args.top))
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    if not report.periods:
        print(f"no executions of {args.id!r} in the learner's database", file=sys.stderr)
        return 1
    print(f"{args.id}  per {args.interval} (UTC); trend against the previous {args.interval}")
    print_table(ANALYTICS_COLUMNS, map(_period_row, report.periods), right=ANALYTICS_FIGURES)
    _print_values(report)
    return 0


def _print_values(report: PeriodReport) -> None:
    """The most used values: per period, every variant together, then each variant."""
    if not any(p.top_values for p in report.all_variants):
        return
    print()
    print(f"MOST USED VARIABLE VALUES  calls (change against the previous {report.interval})")
    by_start: dict[datetime, list[Any]] = {}
    for f in report.periods:
        if f.top_values:
            by_start.setdefault(f.start, []).append(f)
    rows = []
    for totals in report.all_variants:
        if not totals.top_values:
            continue
        rows.append(
            (totals.start.strftime("%Y-%m-%d %H:%M"), "(all)", _values_text(totals.top_values))
        )
        cells = by_start.get(totals.start, [])
        if len(cells) > 1:
            rows += [("", f.variant, _values_text(f.top_values)) for f in cells]
    print_table(("PERIOD", "VARIANT", "VALUES"), rows)


def _values_text(variables: list[Any]) -> str:
    parts = []
    for v in variables:
        listed = [
            f"{_value(c.value)} {c.count}" + ("" if not c.change else f" ({c.change:+d})")
            for c in v.values
        ]
        if v.other:
            listed.append(f"other {v.other}")
        parts.append(f"{v.variable}: " + ", ".join(listed))
    return " · ".join(parts)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        # Quoted when it could not be read back from the line as it stands.
        plain = value and value.isprintable() and not any(c in value for c in " ,:·")
        return value if plain else json.dumps(value)
    return str(value)
