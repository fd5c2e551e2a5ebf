"""Learner replay throughput into SQLite (target >= 20,000 events/s).

Generates realistic traffic (5 prompts x 3 variants; executions carrying two recorded
variable values, an enum and an integer, as a prompt's safe variables would; feedback for
~75 % of them, 10 % of it arriving before its execution, a few duplicates and commands)
and measures three things:

1. decode: JSON bytes -> event models (what any bus consumer pays);
2. projection only: decoded events straight into :class:`learner.projection.transaction.Projection`;
3. end to end: ``promptlab replay``'s path, a real nats-server stream read with
   ``EventBus.read`` and projected into a fresh SQLite file.

The machine is often shared, so ``--repeat N`` runs every measurement N times and
prints the median (and the spread).

``python -m bench.replay [--events N] [--batch N] [--repeat N] [--quick] [--no-variables]
[--capture]`` (``--capture``: every execution carries captured content, so the
projection also writes the production examples table)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from promptlab.events.bus import Delivery
from promptlab.events.models import (
    BaseEvent,
    CapturedContent,
    ExecutionCompleted,
    FeedbackReceived,
    PromoteCommand,
    VariantRegistered,
    decode,
    encode,
)
from promptlab.learner.projection.reward import RewardRule
from promptlab.learner.projection.transaction import Projection
from promptlab.learner.replay import REPLAY_BATCH, rebuild
from promptlab.learner.storage.store import Store

PROMPTS = [f"prompt-{i}" for i in range(5)]
VARIANTS = ["a", "b", "c"]
T0 = datetime(2025, 1, 6, tzinfo=UTC)


TONES = ["formal", "casual", "brief", "detailed"]


def generate(
    n: int, seed: int = 7, *, variables: bool = True, capture: bool = False
) -> list[BaseEvent]:
    """About ``n`` events of realistic shape (seeded: the same every run); with
    ``variables``, every execution records two variable values; with ``capture``, every
    execution carries captured content (a production example: variables and answer)."""
    rng = random.Random(seed)
    events: list[BaseEvent] = [
        VariantRegistered(
            prompt_id=p,
            variant=v,
            version=f"{p}-{v}",
            model="simulated/echo",
            template="Hi {{ name }}",
            champion=v == "a",
            occurred_at=T0,
        )
        for p in PROMPTS
        for v in VARIANTS
    ]
    i = 0
    while len(events) < n:
        prompt, variant = rng.choice(PROMPTS), rng.choices(VARIANTS, weights=[6, 2, 2])[0]
        at = T0 + timedelta(milliseconds=i * 40)
        ex = ExecutionCompleted(
            execution_id=f"x{i}",
            prompt_id=prompt,
            variant=variant,
            version=f"{prompt}-{variant}",
            model="gpt-4o-mini",
            provider="openai",
            subject=f"user-{rng.randrange(2000)}",
            latency_ms=rng.lognormvariate(6.0, 0.5),
            ttft_ms=rng.uniform(50, 300),
            input_tokens=rng.randrange(50, 800),
            output_tokens=rng.randrange(10, 400),
            cost_usd=rng.uniform(1e-5, 2e-3),
            status="error" if rng.random() < 0.02 else "ok",
            occurred_at=at,
            variable_values=(
                {"tone": rng.choice(TONES), "max_items": rng.randrange(1, 11)}
                if variables
                else None
            ),
            content=(
                CapturedContent(
                    output=f"Hello user {i}, here is a short answer of a few words.",
                    variables={"name": f"user {i}", "tone": rng.choice(TONES)},
                )
                if capture
                else None
            ),
        )
        batch: list[BaseEvent] = [ex]
        if rng.random() < 0.75:
            fb = FeedbackReceived(
                execution_id=ex.execution_id,
                name="thumbs_up",
                value=rng.random() < (0.5 + 0.05 * VARIANTS.index(variant)),
                occurred_at=at + timedelta(seconds=rng.uniform(1, 600)),
            )
            batch = [fb, ex] if rng.random() < 0.1 else [ex, fb]
        if rng.random() < 0.005:
            batch.append(ex)  # the same execution again (a retried publish with a new id)
        if rng.random() < 0.0005:
            batch.append(
                PromoteCommand(prompt_id=prompt, variant=rng.choice(VARIANTS), occurred_at=at)
            )
        events.extend(batch)
        i += 1
    return events[:n]


def _rewards() -> dict[str, RewardRule]:
    return {p: RewardRule(feedback="thumbs_up") for p in PROMPTS}


async def projection_only(events: list[BaseEvent], db: Path, batch: int) -> float:
    store = Store(f"sqlite+aiosqlite:///{db}")
    await store.create()
    projection = Projection(store, consumer="bench", rewards=_rewards())
    await projection.load()
    deliveries = [Delivery(sequence=i + 1, event=e, data=b"") for i, e in enumerate(events)]
    start = time.perf_counter()
    for i in range(0, len(deliveries), batch):
        await projection.apply(deliveries[i : i + batch])
    elapsed = time.perf_counter() - start
    await store.close()
    return elapsed


async def through_nats(events: list[BaseEvent], workdir: Path, batch: int) -> tuple[float, float]:
    from promptlab.events.embedded import NatsServerProcess
    from promptlab.events.jetstream import JetStreamBus

    server = NatsServerProcess(workdir / "nats")
    server.start()
    try:
        bus = JetStreamBus(url=server.url)
        await bus.start()
        start = time.perf_counter()
        for i in range(0, len(events), 1000):
            await bus.publish_many(events[i : i + 1000])
        publish = time.perf_counter() - start
        store = Store(f"sqlite+aiosqlite:///{workdir / 'nats-replay.db'}")
        await store.create()
        start = time.perf_counter()
        await rebuild(
            bus,
            store,
            consumer="bench",
            until=await bus.last_sequence(),
            rewards=_rewards(),
            batch_size=batch,
        )
        replay = time.perf_counter() - start
        await store.close()
        await bus.close()
        return publish, replay
    finally:
        server.stop()


def _rate(n: int, seconds: list[float]) -> str:
    """Median events/s, with the range when repeated."""
    rates = sorted(n / s for s in seconds)
    text = f"{statistics.median(rates):>10,.0f} events/s"
    if len(rates) > 1:
        text += f"  (median of {len(rates)}: {rates[0]:,.0f} .. {rates[-1]:,.0f})"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.replay", description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument(
        "--batch",
        type=int,
        default=REPLAY_BATCH,
        help=f"events per transaction (default {REPLAY_BATCH:,}, what promptlab replay uses)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement (median)")
    parser.add_argument("--quick", action="store_true", help="20,000 events")
    parser.add_argument("--skip-nats", action="store_true", help="projection only")
    parser.add_argument(
        "--no-variables", action="store_true", help="executions without recorded variable values"
    )
    parser.add_argument(
        "--capture",
        action="store_true",
        help="executions carry captured content: every call becomes a production example",
    )
    args = parser.parse_args()
    n = 20_000 if args.quick else args.events
    events = generate(n, variables=not args.no_variables, capture=args.capture)
    blobs = [encode(e) for e in events]
    # The generated events and blobs are the benchmark's fixture, not part of a replay:
    # keep the garbage collector from walking them over and over while it measures.
    gc.freeze()
    decode_s, direct_s, publish_s, replay_s = [], [], [], []
    for _ in range(args.repeat):
        start = time.perf_counter()
        for blob in blobs:
            decode(blob)
        decode_s.append(time.perf_counter() - start)
        with tempfile.TemporaryDirectory(prefix="promptlab-bench-") as tmp:
            work = Path(tmp)
            direct_s.append(asyncio.run(projection_only(events, work / "direct.db", args.batch)))
            if not args.skip_nats:
                publish, replay = asyncio.run(through_nats(events, work, args.batch))
                publish_s.append(publish)
                replay_s.append(replay)
    executions = sum(isinstance(e, ExecutionCompleted) for e in events)
    values = "without" if args.no_variables else "with"
    captured = ", captured as production examples" if args.capture else ""
    print(
        f"events: {n:,} ({executions:,} executions {values} variable values{captured}), "
        f"batch {args.batch}"
    )
    print(f"decode (bytes -> models):          {_rate(n, decode_s)}")
    print(f"projection only into SQLite:       {_rate(n, direct_s)}")
    cpu = [d + p for d, p in zip(decode_s, direct_s, strict=True)]
    print(f"decode + projection (replay CPU):  {_rate(n, cpu)}")
    if replay_s:
        print(f"publish to JetStream (pipelined):  {_rate(n, publish_s)}")
        print(f"replay from JetStream into SQLite: {_rate(n, replay_s)}  [target >= 20,000]")


if __name__ == "__main__":
    main()
