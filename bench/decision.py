"""What one learner decision costs as a prompt's history grows.

A decision loads the prompt's view (counters, the running same-period tests the
projection keeps, the decisions so far) and runs the policy on it. The projection steps
every running test at each rewarded call (:mod:`learner.projection.evidence`), so a
decision reads a handful of numbers whatever the history. (Recomputing the tests from
every stored reward cost 42 ms at 10,000 rewarded calls and 870 ms at 100,000, per
decision, per prompt.)

Prints, for each history size: the projection's rate while building it (SQLite file,
3 variants, batches of 2,000 events) and the median of 7 decisions.

``python -m bench.decision [--quick]`` (quick: 10,000 and 50,000 calls; else up to
200,000).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from promptlab.events.bus import Delivery
from promptlab.events.models import (
    BaseEvent,
    ExecutionCompleted,
    FeedbackReceived,
    RoutingInfo,
    VariantRegistered,
    encode,
)
from promptlab.learner.decide import default_policy
from promptlab.learner.projection.reward import RewardRule
from promptlab.learner.projection.transaction import Projection
from promptlab.learner.storage.store import Store
from promptlab.learner.storage.view import load_view
from promptlab.prompts.config import PromotionConfig

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SHARES = {"a": 0.8, "b": 0.1, "c": 0.1}


def _events(calls: int, seed: int = 1) -> list[BaseEvent]:
    rng = random.Random(seed)
    out: list[BaseEvent] = [
        VariantRegistered(
            prompt_id="p",
            variant=v,
            version=f"v-{v}",
            model="simulated/echo",
            template="Hi {{ name }}",
            champion=v == "a",
            occurred_at=T0,
        )
        for v in SHARES
    ]
    for i in range(calls):
        v = rng.choices(list(SHARES), weights=list(SHARES.values()))[0]
        at = T0 + timedelta(seconds=i)
        out.append(
            ExecutionCompleted(
                execution_id=f"x{i}",
                prompt_id="p",
                variant=v,
                model="simulated/echo",
                provider="simulated",
                latency_ms=100.0,
                occurred_at=at,
                routing=RoutingInfo(probability=SHARES[v], exploration=v != "a"),
            )
        )
        out.append(
            FeedbackReceived(
                execution_id=f"x{i}",
                name="thumbs_up",
                value=rng.random() < 0.5,
                occurred_at=at + timedelta(milliseconds=500),
            )
        )
    return out


async def _measure(calls: int, root: Path) -> tuple[float, float]:
    store = Store(f"sqlite+aiosqlite:///{root}/decision-{calls}.db")
    await store.create()
    config = PromotionConfig(min_samples=50)
    projection = Projection(
        store,
        consumer="bench",
        rewards={"p": RewardRule(feedback="thumbs_up")},
        promotion=lambda _: config,
    )
    await projection.load()
    events = _events(calls)
    items = [Delivery(sequence=i + 1, event=e, data=encode(e)) for i, e in enumerate(events)]
    start = time.perf_counter()
    for i in range(0, len(items), 2000):
        await projection.apply(items[i : i + 2000])
    rate = len(items) / (time.perf_counter() - start)
    times = []
    for _ in range(7):
        t = time.perf_counter()
        view = await load_view(store, "p", config)
        assert view is not None
        default_policy(view, np.random.default_rng(0), view.last_sequence)
        times.append(time.perf_counter() - t)
    await store.close()
    return rate, statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10,000 and 50,000 calls only")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    sizes = [10_000, 50_000] if args.quick else [10_000, 50_000, 200_000]
    print("| rewarded calls | projection events/s | one decision (median of 7) |")
    print("|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="promptlab-bench-") as root:
        for calls in sizes:
            rate, decision = asyncio.run(_measure(calls, Path(root)))
            print(f"| {calls:,} | {rate:,.0f} | {1000 * decision:.1f} ms |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
