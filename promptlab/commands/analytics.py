"""`promptlab analytics ID [--interval hour|day|week|month] [--from --to] [--json]`.

Per variant and period, from the learner's database (no NATS needed): executions,
unique subjects, latency p50/p95, success and error rates, tokens, cost, quality and
satisfaction, and the change of each against the previous period (see
:mod:`learner.storage.periods` for the definitions).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from promptlab.cli import add_config_option

if TYPE_CHECKING:
    from learner.storage.periods import Interval, PeriodReport
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
        "--from", dest="start", type=_moment, metavar="TIME", help="ISO date or time (UTC)"
    )
    parser.add_argument("--to", dest="end", type=_moment, metavar="TIME", help="exclusive end")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    add_config_option(parser)
    parser.set_defaults(handler=run)


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is no ISO date or time (e.g. 2025-01-06 or 2025-01-06T12:00)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def collect(
    settings: Settings,
    prompt_id: str,
    interval: Interval,
    start: datetime | None = None,
    end: datetime | None = None,
) -> PeriodReport:
    from learner.storage.periods import period_analytics
    from learner.storage.store import Store

    store = Store(settings.storage.url)
    try:
        await store.create()
        return await period_analytics(store, prompt_id, interval=interval, start=start, end=end)
    finally:
        await store.close()


async def report_json(
    settings: Settings,
    prompt_id: str,
    interval: str,
    start: datetime | None,
    end: datetime | None,
) -> dict[str, Any]:
    """The JSON of :func:`collect` (what ``/admin/prompts/{id}/analytics`` serves)."""
    report = await collect(settings, prompt_id, interval, start, end)  # type: ignore[arg-type]
    return report.to_dict()


def _fmt(value: Any, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def _trend(value: Any, spec: str) -> str:
    return "" if value is None else format(value, "+" + spec)


def run(args: argparse.Namespace, settings: Settings) -> int:
    report = asyncio.run(collect(settings, args.id, args.interval, args.start, args.end))
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    if not report.periods:
        print(f"no executions of {args.id!r} in the learner's database", file=sys.stderr)
        return 1
    print(f"{args.id}  per {args.interval} (UTC); trend against the previous {args.interval}")
    print(
        f"{'PERIOD':<17}{'VARIANT':<16}{'CALLS':>7}{'SUBJ':>6}{'P50 ms':>8}{'P95 ms':>8}"
        f"{'ERR':>7}{'TOKENS':>8}{'COST $':>10}{'QUALITY':>9}{'SATISF':>8}  TREND"
    )
    for f in report.periods:
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
        print(
            f"{f.start.strftime('%Y-%m-%d %H:%M'):<17}{f.variant:<16}{f.executions:>7}"
            f"{_fmt(f.unique_subjects, 'd'):>6}{_fmt(f.latency_p50_ms, '.0f'):>8}"
            f"{_fmt(f.latency_p95_ms, '.0f'):>8}{_fmt(f.error_rate, '.1%'):>7}{f.tokens:>8}"
            f"{f.cost_usd:>10.5f}{_fmt(f.quality):>9}{_fmt(f.satisfaction, '.0%'):>8}  {changes}"
        )
    return 0
