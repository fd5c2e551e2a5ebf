"""Embedded nats-server start-to-ready: the time ``EmbeddedNats.start()`` takes.

Each run starts a server in a fresh data dir, waits until it accepts connections and a
JetStream bus has created its stream and buckets, then stops it. Prints the median.

    python -m bench.nats_start [--runs N] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from promptlab.events.config import NatsSettings
from promptlab.events.embedded import EmbeddedNats
from promptlab.events.jetstream import JetStreamBus


async def _one_start(data_dir: Path) -> tuple[float, float]:
    settings = NatsSettings(data_dir=data_dir)
    t0 = time.perf_counter()
    server = EmbeddedNats(settings)
    await server.start()
    ready = time.perf_counter() - t0
    bus = JetStreamBus(settings, url=server.url)
    await bus.start()
    with_stream = time.perf_counter() - t0
    await bus.close()
    await server.stop()
    return ready, with_stream


async def measure(runs: int = 7) -> tuple[list[float], list[float]]:
    """Start-to-ready and start-to-stream-created times, in seconds, one per run."""
    ready, stream = [], []
    with tempfile.TemporaryDirectory(prefix="promptlab-bench-nats-") as tmp:
        for i in range(runs):
            r, s = await _one_start(Path(tmp) / f"run{i}")
            ready.append(r)
            stream.append(s)
    return ready, stream


def main(argv: list[str] | None = None) -> None:
    """Print the median embedded NATS start-to-ready over a few starts."""
    parser = argparse.ArgumentParser(prog="bench.nats_start", description=__doc__)
    parser.add_argument("--runs", type=int, default=7, help="number of starts (default 7)")
    parser.add_argument("--quick", action="store_true", help="3 starts")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    runs = 3 if args.quick else args.runs
    ready, stream = asyncio.run(measure(runs))
    print(
        f"embedded nats-server start-to-ready: median {statistics.median(ready) * 1000:.1f} ms "
        f"(min {min(ready) * 1000:.1f}, max {max(ready) * 1000:.1f}, {runs} starts); "
        f"with stream and KV buckets created: median {statistics.median(stream) * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
