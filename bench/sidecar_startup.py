"""Sidecar cold start: ``promptlab serve`` with embedded NATS, from exec to ready.

Each round starts ``promptlab serve --no-learner`` in a fresh process with a fresh
data directory (``nats.url = "embedded"``: the nats-server binary is started too), and
measures the time until the "serving" line is printed and until ``GET /readyz``
answers 200, then the process's RSS while idle. Targets: ready <= 1.5 s, RSS <= 120 MB
(the RSS after load is printed by ``bench.sidecar_latency``).

A second series runs plain ``promptlab serve`` (the learner in the same process): the
sidecar is ready as fast, since the learner is imported in a thread after the ready
line, but the process then also holds SciPy, SQLAlchemy and the learner's state, so its
RSS is measured once the learner has started (two seconds after ready).

``python -m bench.sidecar_startup [--quick] [--rounds N]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tests.support.serving import Serve, clean_env, write_config

ROOT = Path(__file__).resolve().parents[1]

PROMPT = """
id = "bench"
[[variables]]
name = "q"
type = "string"
required = true
[[variants]]
name = "a"
model = "simulated/alpha"
template = "Answer: {{ q }}"
champion = true
"""


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def one_round(tmpdir: Path, learner: bool = False) -> tuple[float, float, float]:
    """Seconds to the serving line, seconds to /readyz 200, idle RSS in MB."""
    config = write_config(tmpdir, {"bench": PROMPT})
    served = Serve(config, learner=learner, env=clean_env(), cwd=ROOT, ready_timeout=30)
    try:
        time.sleep(2.0 if learner else 0.5)
        rss = _rss_mb(served.pid)
    finally:
        served.terminate(timeout=30)
    return served.line_after_s, served.ready_after_s, rss


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="3 rounds instead of 5")
    parser.add_argument("--rounds", type=int, help="cold starts to measure")
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 5)
    for learner in (False, True):
        label = "promptlab serve (with learner)" if learner else "promptlab serve --no-learner"
        results = []
        for index in range(rounds):
            with tempfile.TemporaryDirectory(prefix="promptlab-startup-") as tmp:
                serving, ready, rss = one_round(Path(tmp), learner)
            results.append((serving, ready, rss))
            load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
            print(
                f"{label} round {index + 1}/{rounds} (load {load}): serving line {serving:.3f} s, ready {ready:.3f} s, idle RSS {rss:.1f} MB",
                flush=True,
            )
        med = [sorted(r[i] for r in results)[len(results) // 2] for i in range(3)]
        print(
            f"{label}, median of {rounds}: cold start to ready {med[1]:.3f} s (target <= 1.5 s); serving line {med[0]:.3f} s; idle RSS {med[2]:.1f} MB (target <= 120 MB)",
            flush=True,
        )


if __name__ == "__main__":
    main()
