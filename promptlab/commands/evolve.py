"""``promptlab evolve FILE``: breed better variants of an experiment's seed.

Wiring only: the providers and the event bus from settings, :mod:`lab.evolution` for
the work, rich for the output. Every candidate is published as an offline
``VariantRegistered`` (through the durable publisher: without NATS they wait in the
outbox); ``--register`` also publishes the winners that beat the seed as live
challengers and stores them in the variants bucket, where every sidecar picks them up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptlab.lab.comparisons import lead_text
from promptlab.lab.evolution import (
    EvolutionError,
    EvolutionRun,
    evolve_experiment,
    live_events,
    resolve_spec,
)
from promptlab.lab.experiment import ExperimentFileError, load_experiment
from promptlab.lab.search import GenerationStats
from promptlab.models import make_providers

if TYPE_CHECKING:
    from promptlab.events.bus import EventBus
    from promptlab.events.models import VariantRegistered
    from promptlab.lab.runner import Publish
    from promptlab.settings import Settings


@contextlib.asynccontextmanager
async def _bus(
    settings: Settings | None, enabled: bool
) -> AsyncIterator[tuple[Publish | None, EventBus | None]]:
    if not enabled or settings is None:
        yield None, None
        return
    from promptlab.events.bus import BusError
    from promptlab.events.credentials import redact_url
    from promptlab.events.embedded import resolve_nats_url
    from promptlab.events.jetstream import JetStreamBus
    from promptlab.events.publisher import EventPublisher

    url, embedded = await resolve_nats_url(settings.nats)
    bus = JetStreamBus(settings.nats, url=url, name="promptlab-evolve")
    connected = True
    try:
        await bus.start()
    except BusError as exc:
        connected = False
        print(
            f"promptlab: NATS at {redact_url(url)}: {exc}; events go to the outbox", file=sys.stderr
        )
    publisher = EventPublisher(bus, settings.nats.outbox_dir, settings.nats.publish_queue_size)
    await publisher.start()
    try:
        yield publisher.publish, (bus if connected else None)
    finally:
        await publisher.close()
        await bus.close()
        if embedded is not None:
            await embedded.stop()


async def register_live(bus: EventBus, events: list[VariantRegistered]) -> None:
    """Store live challengers where sidecars watch for run-time variants."""
    from promptlab.events.models import encode
    from promptlab.events.subjects import Bucket, variant_key

    for event in events:
        await bus.kv_put(
            str(Bucket.VARIANTS), variant_key(event.prompt_id, event.variant), encode(event)
        )


def _progress(stats: GenerationStats) -> None:
    print(
        f"generation {stats.generation}: best {_f(stats.best)}  mean {_f(stats.mean)}  "
        f"bred {stats.bred}  rejected {stats.rejected}  calls {stats.calls}  "
        f"spend ${stats.spend_usd:.4f}",
        file=sys.stderr,
        flush=True,
    )


def _f(value: float | None) -> str:
    return "-" if value is None or value != value or abs(value) == float("inf") else f"{value:.3f}"


def print_run(run: EvolutionRun) -> None:
    """The best variants with their figures, comparison with the seed, and lineage."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(width=max(Console().width, 120))
    result = run.result
    seed = result.seed
    quality = seed.evaluation.figures.get("quality_mean")
    console.print(
        f"[bold]{result.prompt_id}[/]: {result.search} search, mutator {run.mutator} "
        f"(instructions v{run.instructions_version}); seed {seed.name}: fitness "
        f"{_f(seed.fitness)}, quality {_f(quality)}, constraints "
        f"{'met' if seed.evaluation.figures.get('feasible') else 'not met'}"
    )
    table = Table(
        "variant",
        "fitness",
        "constraints",
        "quality",
        "success",
        "vs seed",
        "p (Holm)",
        "strategy",
        "gen",
    )
    for c in run.best:
        cmp = run.versus_seed(c)
        figures = c.evaluation.figures
        diff = "-"
        p = "-"
        if cmp is not None:
            sign = 1 if cmp.a.startswith(f"{c.name} @ ") else -1
            diff = f"{sign * cmp.mean_diff:+.3f}" + (" *" if cmp.significant else "")
            p = _f(cmp.p_holm)
        table.add_row(
            c.name,
            _f(c.fitness),
            "met" if figures.get("feasible") else "not met",
            _f(figures.get("quality_mean")),
            _f(figures.get("success_rate")),
            diff,
            p,
            c.strategy,
            str(c.generation),
        )
    console.print(table)
    console.print("(* significant by the paired test on the same cases, Holm-corrected)")
    for c in run.best:
        console.print(
            escape(lead_text(run.lead_over_seed(c), run.comparison.alpha, winner=c.name)),
            highlight=False,
        )
    for c in run.best:
        chain = " <- ".join(f"{a.name} ({a.strategy})" for a in result.lineage(c.name))
        console.print(f"lineage: {escape(chain)}")
        console.print(f"  template: {escape(repr(c.variant.template))}")
        if c.variant.system:
            console.print(f"  system: {escape(repr(c.variant.system))}")
        if c.rationale:
            console.print(f"  rationale: {escape(c.rationale)}")
    if result.rejected:
        reasons: dict[str, int] = {}
        for r in result.rejected:
            key = f"{r.kind}: {r.reason}"
            reasons[key] = reasons.get(key, 0) + 1
        console.print(f"rejected {len(result.rejected)} mutants:")
        for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1]):
            console.print(f"  {count} x {escape(reason)}")
    tail = " (stopped at the budget)" if result.stopped_by_budget else ""
    console.print(f"calls {result.calls}, spend ${result.spend_usd:.4f}{tail}")
    if not run.improved:
        console.print(no_improvement_line(run), markup=False)


def no_improvement_line(run: EvolutionRun) -> str:
    """The one line that says the search found nothing better than the seed."""
    result = run.result
    bred = sum(1 for c in result.candidates if c.generation > 0)
    return (
        f"nothing better than the seed: {bred} bred candidates over {len(result.generations)} "
        f"generations, none above {result.seed.name}'s fitness {_f(result.seed.fitness)}; "
        "the seed stays"
    )


def evolve_command(args: argparse.Namespace, settings: Settings | None) -> int:
    try:
        experiment = load_experiment(args.file, prompts_dir=args.prompts_dir)
        spec = resolve_spec(
            experiment,
            generations=args.generations,
            population=args.population,
            strategies=args.strategies,
            search=args.search,
            mutator=args.mutator,
            budget_usd=args.budget_usd,
            max_calls=args.max_calls,
            seed=args.seed,
        )
    except ExperimentFileError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    except ValueError as exc:  # a flag with a value [evolution] does not accept
        print(f"promptlab evolve: {exc}", file=sys.stderr)
        return 2

    async def main() -> tuple[EvolutionRun, list[VariantRegistered]] | int:
        async with make_providers(settings) as client, _bus(settings, args.events) as (pub, bus):
            run = await evolve_experiment(
                experiment, client, spec=spec, publish=pub, on_generation=_progress
            )
            registered = live_events(run, experiment.prompt) if args.register else []
            if registered:
                if pub is None:
                    print(
                        "promptlab evolve: --register needs events (drop --no-events)",
                        file=sys.stderr,
                    )
                    return 2
                for event in registered:
                    await _maybe_await(pub(event))
                if bus is not None:
                    await register_live(bus, registered)
        return run, registered

    try:
        outcome = asyncio.run(main())
    except EvolutionError as exc:
        print(f"promptlab evolve: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if isinstance(outcome, int):
        return outcome
    run, registered = outcome
    data: dict[str, Any] = run.to_json()
    data["registered"] = [e.variant for e in registered]
    data["improved"] = run.improved
    if args.json:
        text = json.dumps(data, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n", encoding="utf-8")
    if args.json != "-":
        print_run(run)
        for event in registered:
            print(f"registered {event.variant} as a live challenger of {event.prompt_id}")
    return 0


async def _maybe_await(outcome: Any) -> None:
    if asyncio.iscoroutine(outcome) or isinstance(outcome, asyncio.Future):
        await outcome
