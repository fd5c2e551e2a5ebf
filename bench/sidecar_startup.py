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
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

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


def _ready(url: str, opener: urllib.request.OpenerDirector) -> bool:
    try:
        with opener.open(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def one_round(tmpdir: Path, learner: bool = False) -> tuple[float, float, float]:
    """Seconds to the serving line, seconds to /readyz 200, idle RSS in MB."""
    (tmpdir / "prompts").mkdir()
    (tmpdir / "prompts" / "bench.toml").write_text(PROMPT)
    config = tmpdir / "promptlab.toml"
    config.write_text(
        f'[nats]\nurl = "embedded"\ndata_dir = "{tmpdir}/nats"\noutbox_dir = "{tmpdir}/outbox"\n[prompts]\ndir = "{tmpdir}/prompts"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTLAB_")}
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    start = time.perf_counter()
    flags = [] if learner else ["--no-learner"]
    config.write_text(
        config.read_text() + f'[storage]\nurl = "sqlite+aiosqlite:///{tmpdir}/promptlab.db"\n'
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "promptlab",
            "--config",
            str(config),
            "serve",
            *flags,
            "--port",
            "0",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        serving = time.perf_counter() - start
        match = re.search(r"(http://[\d.]+:\d+)/v1", line)
        if not match:
            raise RuntimeError(f"promptlab serve did not start: {line!r}")
        while not _ready(match.group(1) + "/readyz", opener):
            if time.perf_counter() - start > 30:
                raise RuntimeError("not ready within 30 s")
            time.sleep(0.005)
        ready = time.perf_counter() - start
        time.sleep(2.0 if learner else 0.5)
        rss = _rss_mb(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    return serving, ready, rss


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
