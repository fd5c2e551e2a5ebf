"""Sidecar overhead: added latency vs calling the upstream directly, and throughput.

Starts, each in its own process, on loopback: a temporary nats-server (JetStream), the
fake OpenAI-compatible upstream (``tests/sidecar/fake_upstream.py``), and the sidecar
through ``promptlab serve`` (routed calls, events published to that nats-server). A
load generator process (raw HTTP/1.1 keep-alive on asyncio + uvloop: far cheaper per
request than the sidecar, so it is not the bottleneck) drives the same closed loop
first against the upstream directly, then through the sidecar, at 1 and 8 connections.

Added latency = sidecar percentile - direct percentile (same generator, same upstream).
Targets: added p50 <= 0.5 ms at 1 connection, p99 <= 2 ms at 8, >= 3,000 req/s.
Also prints the routing decision time (target <= 20 us) measured in-process.

``python -m bench.sidecar_latency [--quick] [--duration S]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FAKE_UPSTREAM = ROOT / "tests" / "sidecar" / "fake_upstream.py"

PROMPT = """
id = "bench"
[[variables]]
name = "q"
type = "string"
required = true
max_length = 1000
[routing]
strategy = "thompson"
exploration_cap = 0.2
sticky = false
[[variants]]
name = "a"
model = "fake/model-a"
template = "Answer: {{ q }}"
champion = true
[[variants]]
name = "b"
model = "fake/model-b"
system = "You are brief."
template = "Answer briefly: {{ q }}"
params = { temperature = 0.2 }
"""

ROUTED = {"model": "promptlab/bench", "messages": [], "promptlab": {"variables": {"q": "what is the capital of France?"}}}
DIRECT = {"model": "model-a", "messages": [{"role": "user", "content": "Answer: what is the capital of France?"}]}


# ---------------------------------------------------------------------- load generator


def _request(port: int, path: str, body: dict[str, Any]) -> bytes:
    data = json.dumps(body).encode()
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    return head.encode() + data


async def _connection(port: int, request: bytes, warmup_until: float, deadline: float, out: list[float], errors: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    clock = time.perf_counter
    try:
        while True:
            start = clock()
            if start >= deadline:
                return
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            lower = head.lower()
            at = lower.index(b"content-length:") + 15
            await reader.readexactly(int(lower[at : lower.index(b"\r\n", at)]))
            end = clock()
            if head[9:12] != b"200":
                errors.append(int(head[9:12]))
            elif start >= warmup_until:
                out.append(end - start)
    finally:
        writer.close()


async def _load(port: int, path: str, body: dict[str, Any], connections: int, duration: float, warmup: float) -> dict[str, Any]:
    request = _request(port, path, body)
    now = time.perf_counter()
    latencies: list[float] = []
    errors: list[int] = []
    await asyncio.gather(*(_connection(port, request, now + warmup, now + warmup + duration, latencies, errors) for _ in range(connections)))
    latencies.sort()
    n = len(latencies)
    return {
        "n": n,
        "errors": len(errors),
        "rps": n / duration,
        "p50_ms": latencies[n // 2] * 1000 if n else float("nan"),
        "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1000 if n else float("nan"),
    }


def loadgen_main(argv: list[str]) -> None:
    """Entry of the load generator process: prints one JSON line of results."""
    port, path, target, connections, duration, warmup = argv
    import uvloop

    body = ROUTED if target == "routed" else DIRECT
    result = uvloop.run(_load(int(port), path, body, int(connections), float(duration), float(warmup)))
    print(json.dumps(result), flush=True)


def run_load(port: int, target: str, connections: int, duration: float, warmup: float) -> dict[str, Any]:
    path = "/v1/chat/completions"
    out = subprocess.run(
        [sys.executable, "-m", "bench.sidecar_latency", "--loadgen", str(port), path, target, str(connections), str(duration), str(warmup)],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


# ---------------------------------------------------------------------- processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def router_decision_us() -> tuple[float, float]:
    """Mean time of one routing decision (plain, sticky) in microseconds."""
    import tomllib

    from prompts import PromptSpec
    from sidecar.router import Router

    spec = PromptSpec.model_validate(tomllib.loads(PROMPT))
    spec = spec.model_copy(update={"routing": spec.routing.model_copy(update={"sticky": True})})
    router = Router([spec], seed=1)
    n = 200_000
    start = time.perf_counter()
    for _ in range(n):
        router.decide("bench")
    plain = (time.perf_counter() - start) / n * 1e6
    subjects = [f"user-{i}" for i in range(1000)]
    start = time.perf_counter()
    for i in range(n):
        router.decide("bench", subjects[i % 1000])
    sticky = (time.perf_counter() - start) / n * 1e6
    return plain, sticky


async def _stream_events(url: str) -> int:
    from events.jetstream import JetStreamBus

    bus = JetStreamBus(url=url)
    await bus.start()
    try:
        return await bus.last_sequence()
    finally:
        await bus.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 s per measurement instead of 5")
    parser.add_argument("--duration", type=float, help="seconds per measurement")
    parser.add_argument("--loadgen", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loadgen:
        loadgen_main(args.loadgen)
        return
    duration = args.duration or (2.0 if args.quick else 5.0)
    warmup = 0.5 if args.quick else 1.0

    from events.embedded import NatsServerProcess

    plain_us, sticky_us = router_decision_us()
    print(f"routing decision: {plain_us:.2f} us (sticky by subject: {sticky_us:.2f} us); target <= 20 us", flush=True)

    procs: list[subprocess.Popen[str]] = []
    with tempfile.TemporaryDirectory(prefix="promptlab-bench-") as tmp:
        tmpdir = Path(tmp)
        nats = NatsServerProcess(tmpdir / "nats")
        nats.start()
        try:
            upstream_port, sidecar_port = _free_port(), _free_port()
            procs.append(subprocess.Popen([sys.executable, str(FAKE_UPSTREAM), "--port", str(upstream_port)], cwd=ROOT, text=True))
            (tmpdir / "prompts").mkdir()
            (tmpdir / "prompts" / "bench.toml").write_text(PROMPT)
            config = tmpdir / "promptlab.toml"
            config.write_text(
                f'[nats]\nurl = "{nats.url}"\noutbox_dir = "{tmpdir}/outbox"\n'
                f'[prompts]\ndir = "{tmpdir}/prompts"\n'
                f'[providers.fake]\nkind = "openai"\napi_base = "http://127.0.0.1:{upstream_port}/v1"\nmax_retries = 0\n'
            )
            env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTLAB_")}
            sidecar = subprocess.Popen(
                [sys.executable, "-m", "promptlab", "--config", str(config), "serve", "--no-learner", "--port", str(sidecar_port)],
                cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True,
            )
            procs.append(sidecar)
            assert sidecar.stdout is not None
            print(sidecar.stdout.readline().strip(), flush=True)
            _wait_port(upstream_port)

            rows = []
            for connections in (1, 8):
                direct = run_load(upstream_port, "direct", connections, duration, warmup)
                routed = run_load(sidecar_port, "routed", connections, duration, warmup)
                rows.append((connections, direct, routed))
            peak = run_load(sidecar_port, "routed", 32, duration, warmup)
            events = asyncio.run(_stream_events(nats.url))
        finally:
            for proc in reversed(procs):
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
            nats.stop()

    print(f"\n{'conns':>5} {'direct p50':>11} {'direct p99':>11} {'sidecar p50':>12} {'sidecar p99':>12} {'added p50':>10} {'added p99':>10} {'sidecar req/s':>14} {'errors':>6}")
    for connections, direct, routed in rows:
        print(
            f"{connections:>5} {direct['p50_ms']:>9.3f}ms {direct['p99_ms']:>9.3f}ms {routed['p50_ms']:>10.3f}ms {routed['p99_ms']:>10.3f}ms"
            f" {routed['p50_ms'] - direct['p50_ms']:>8.3f}ms {routed['p99_ms'] - direct['p99_ms']:>8.3f}ms {routed['rps']:>14.0f} {routed['errors']:>6}"
        )
    print(f"peak: {peak['rps']:.0f} req/s routed through one sidecar process at 32 connections (p50 {peak['p50_ms']:.2f} ms, p99 {peak['p99_ms']:.2f} ms, {peak['errors']} errors)")
    print(f"events in the stream after the run: {events} (ExecutionCompleted per routed call, plus VariantRegistered)")
    one, eight = rows[0][2]["p50_ms"] - rows[0][1]["p50_ms"], rows[1][2]["p99_ms"] - rows[1][1]["p99_ms"]
    print(f"targets: added p50 @1 <= 0.5 ms: {one:.3f} ms; added p99 @8 <= 2 ms: {eight:.3f} ms; >= 3000 req/s: {max(peak['rps'], rows[1][2]['rps']):.0f}")
    print("(one 2-core box shared by generator, upstream, sidecar and nats-server: figures include their contention)")


if __name__ == "__main__":
    main()
