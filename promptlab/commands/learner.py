"""`promptlab replay | stats | promote | rollback | pause`: look into and steer the learner.

* ``replay`` rebuilds the projection from sequence 1 into a scratch database (a temporary
  SQLite file, or a scratch schema on PostgreSQL) with the learner's own projection
  code, publishing nothing, and compares it with the live database table by table:
  exit 0 when identical, 1 with the differing rows otherwise.
* ``stats`` prints whether a learner is active on the store (the lease: who holds it),
  the learner's counters (dead letters, feedback dropped / refused / replaced), then,
  per prompt and variant, what the learner knows (from the database; no NATS needed)
  and, per prompt, the leader, its lift and a recommendation.
* ``promote``, ``rollback``, ``pause`` and ``prompts activate|deprecate|archive``
  publish command events; the learner carries
  them out (or rejects them, saying why) and this command waits briefly for its answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptlab.commands.lifecycles import hidden_note, known_variants, unknown_target
from promptlab.commands.tables import figure, print_table
from promptlab.events.bus import BusError, EventBus
from promptlab.events.credentials import redact_url
from promptlab.events.embedded import resolve_nats_url
from promptlab.events.jetstream import JetStreamBus
from promptlab.events.models import (
    BaseEvent,
    CommandRejected,
    LifecycleCommand,
    PauseCommand,
    PromoteCommand,
    RollbackCommand,
)
from promptlab.learner.projection.commands import answer_id
from promptlab.learner.projection.handlers.examples import caps_from_prompts
from promptlab.learner.projection.reward import (
    effective_promotion,
    routing_from_prompts,
    rules_from_prompts,
)
from promptlab.learner.queries import COUNTERS
from promptlab.learner.replay import ReplayReport, catch_up, compare, rebuild
from promptlab.learner.storage.store import Store
from promptlab.reads import open_queries, prompt_files

if TYPE_CHECKING:
    from promptlab.settings import Settings


# --------------------------------------------------------------------------- helpers


async def _with_bus(settings: Settings, work: Callable[[EventBus], Awaitable[int]]) -> int:
    url, embedded = await resolve_nats_url(settings.nats)
    bus = JetStreamBus(settings.nats, url=url, name="promptlab-cli")
    try:
        await bus.start()
        return await work(bus)
    except BusError as exc:
        print(f"promptlab: NATS at {redact_url(url)}: {exc}", file=sys.stderr)
        return 2
    finally:
        await bus.close()
        if embedded is not None:
            await embedded.stop()


# --------------------------------------------------------------------------- replay


async def run_replay(settings: Settings, bus: EventBus, *, attempts: int = 3) -> ReplayReport:
    """Rebuild into a scratch store and compare with the live one.

    A learner that is running moves the live database on; when its position changed
    during the comparison, the scratch projection catches up and compares again.
    """
    prompts = prompt_files(settings, strict=True)
    live = Store(settings.storage.url)
    await live.create()
    durable = settings.learner.durable
    scratch_dir = None
    if live.dialect == "sqlite":
        scratch_dir = tempfile.TemporaryDirectory(prefix="promptlab-replay-")
        scratch = Store(f"sqlite+aiosqlite:///{Path(scratch_dir.name) / 'replay.db'}")
    else:
        scratch = Store(settings.storage.url, schema=f"promptlab_replay_{uuid.uuid4().hex[:10]}")
    try:
        await scratch.create()
        position = await live.position(durable)
        projection, events = await rebuild(
            bus,
            scratch,
            consumer=durable,
            until=position,
            rewards=rules_from_prompts(prompts),
            promotion=lambda p: effective_promotion(prompts.get(p), settings.learner.promotion),
            routing=routing_from_prompts(prompts),
            examples_cap=caps_from_prompts(prompts),
            feedback_repeat=settings.learner.feedback_repeat,
            feedback_wait_s=settings.learner.feedback_wait_s,
            retention_days=settings.learner.retention_days,
        )
        for _ in range(attempts):
            diffs = await compare(live, scratch)
            now = await live.position(durable)
            if now == position:
                break
            position = now
            events += await catch_up(bus, projection, position)
        tables = {}
        from promptlab.learner.storage.schema import PROJECTED_TABLES

        for table in PROJECTED_TABLES:
            tables[table.name] = len(await live.dump(table))
        return ReplayReport(position=position, events=events, tables=tables, diffs=diffs)
    finally:
        if scratch.schema is not None:
            await scratch.drop()
        await scratch.close()
        await live.close()
        if scratch_dir is not None:
            scratch_dir.cleanup()


def replay_command(args: argparse.Namespace, settings: Settings) -> int:
    """``promptlab replay``: exit 0 when identical, 1 when not."""

    async def work(bus: EventBus) -> int:
        report = await run_replay(settings, bus)
        if args.json:
            print(json.dumps(report.to_dict(), indent=2))
        else:
            _print_replay(report)
        return 0 if report.identical else 1

    return asyncio.run(_with_bus(settings, work))


def _print_replay(report: ReplayReport) -> None:
    print(f"replayed {report.events} events up to sequence {report.position}")
    diffs = {d.table: d for d in report.diffs}
    rows = []
    for name, count in report.tables.items():
        diff = diffs.get(name)
        verdict = (
            "identical"
            if diff is None
            else f"DIFFERS (live {diff.live_rows} rows, replay {diff.replay_rows})"
        )
        rows.append((name, count, verdict))
    print_table(("TABLE", "ROWS", "REPLAY"), rows, right=("ROWS",), indent=2)
    for diff in report.diffs:
        for row in diff.only_live:
            print(f"  {diff.table} live only:   {row}")
        for row in diff.only_replay:
            print(f"  {diff.table} replay only: {row}")
    print(
        "identical: the projection is a pure function of the stream"
        if report.identical
        else "NOT identical"
    )


# --------------------------------------------------------------------------- stats


async def collect(
    settings: Settings, prompt_filter: str | None, *, show_all: bool
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The learner's status and the prompts' figures, from one opening of the store."""
    async with open_queries(settings) as queries:
        return await queries.learner_status(), await queries.stats(prompt_filter, show_all=show_all)


STATS_COLUMNS = ("VARIANT", "STATUS", "CALLS", "REWARDED", "REWARD", "95% CI", "P(BEST)", "ERR",
                 "COST $", "P50 ms", "P95 ms")  # fmt: skip
STATS_FIGURES = frozenset(STATS_COLUMNS) - {"VARIANT", "STATUS", "95% CI"}
"""The ``stats`` columns aligned right (numbers)."""

COLUMNS_NOTE = "CALLS: executions recorded; REWARDED: calls with feedback, the reward's sample"
"""The line under the ``stats`` table that says what its two counts are."""


def _stats_row(v: dict[str, Any]) -> tuple[object, ...]:
    ci = v["reward_interval"]
    return (
        v["variant"],
        v["status"],
        v["executions"],
        v["n"],
        figure(v["reward_mean"]),
        f"[{ci[0]:.3f},{ci[1]:.3f}]" if ci else "-",
        figure(v["p_best"]),
        figure(v["error_rate"], ".1%"),
        figure(v["cost_mean_usd"], ".5f"),
        figure(v["latency_p50_ms"], ".0f"),
        figure(v["latency_p95_ms"], ".0f"),
    )


def stats_command(args: argparse.Namespace, settings: Settings) -> int:
    """``promptlab stats``."""
    learner, data = asyncio.run(collect(settings, args.prompt, show_all=args.all))
    if args.json:
        print(json.dumps({"learner": learner, "prompts": data}, indent=2))
        return 0
    print(learner["lease"]["text"])
    counts = learner["counters"]
    print(
        "  "
        + ", ".join(f"{counts[name]} {label.split(' (')[0]}" for name, label in COUNTERS)
        + "\n"
    )
    if not data:
        print("no prompts in the learner's database yet (is the learner running?)")
        return 0
    for prompt in data:
        paused = "  [exploration paused]" if prompt["paused"] else ""
        window = f"  window {prompt['evaluation_window']}" if prompt["evaluation_window"] else ""
        print(f"{prompt['prompt_id']}  champion {prompt['champion']}{paused}{window}")
        print_table(
            STATS_COLUMNS,
            (_stats_row(v) for v in prompt["variants"]),
            right=STATS_FIGURES,
            indent=2,
        )
        print(f"  {COLUMNS_NOTE}")
        if prompt["hidden_archived"]:
            print(f"  {hidden_note(prompt['hidden_archived'])}")
        leader = prompt["leader"] or "- (no variant has rewarded calls yet)"
        lift = ""
        if prompt["lift"] is not None:
            lift = f", lift {prompt['lift']:+.3f}"
            if prompt["lift_interval"]:
                low, high = prompt["lift_interval"]
                lift += f" (always-valid 95% CI {low:+.3f} .. {high:+.3f})"
        print(f"  leader {leader}{lift}; recommendation: {prompt['recommendation']}\n")
    return 0


# --------------------------------------------------------------------------- commands


async def send_command(bus: EventBus, command: BaseEvent, wait: float) -> tuple[int, str]:
    """Publish ``command``; wait up to ``wait`` s for the learner's answer in the stream."""
    ack = await bus.publish(command)
    wanted = answer_id(command)
    deadline = asyncio.get_running_loop().time() + wait
    start = ack.sequence + 1
    while asyncio.get_running_loop().time() < deadline:
        async for sequence, event, _ in bus.read(start):
            start = sequence + 1
            if event is not None and event.event_id == wanted:
                if isinstance(event, CommandRejected):
                    return 1, f"rejected: {event.reason}"
                return 0, f"done: {type(event).__name__} at sequence {sequence}"
        await asyncio.sleep(0.1)
    return (
        0,
        f"sent (sequence {ack.sequence}); no answer within {wait:g}s - the learner carries it out when it runs",
    )


def _send(settings: Settings, command: BaseEvent, wait: float) -> int:
    # Refuse here what the learner could only reject later: a learner that is not
    # running would leave the user with "sent" for a prompt that does not exist.
    known = known_variants(settings)
    if known is not None:
        variant = getattr(command, "variant", None)
        problem = unknown_target(known, getattr(command, "prompt_id", ""), variant)
        if problem is not None:
            print(f"refused: {problem}", file=sys.stderr)
            return 1

    async def work(bus: EventBus) -> int:
        code, message = await send_command(bus, command, wait)
        print(message, file=sys.stderr if code else sys.stdout)
        return code

    return asyncio.run(_with_bus(settings, work))


def promote_command(args: argparse.Namespace, settings: Settings) -> int:
    return _send(
        settings,
        PromoteCommand(
            prompt_id=args.prompt, variant=args.variant, actor=args.actor, reason=args.reason
        ),
        args.wait,
    )


def lifecycle_command(args: argparse.Namespace, settings: Settings) -> int:
    """``promptlab prompts activate|deprecate|archive ID VARIANT``."""
    command = LifecycleCommand(
        prompt_id=args.id,
        variant=args.variant,
        status=args.status,
        actor=args.actor,
        reason=args.reason,
    )
    return _send(settings, command, args.wait)


def rollback_command(args: argparse.Namespace, settings: Settings) -> int:
    return _send(
        settings,
        RollbackCommand(prompt_id=args.prompt, actor=args.actor, reason=args.reason),
        args.wait,
    )


def pause_command(args: argparse.Namespace, settings: Settings) -> int:
    command = PauseCommand(
        prompt_id=args.prompt, paused=not args.resume, actor=args.actor, reason=args.reason
    )
    return _send(settings, command, args.wait)
