"""Where a routed call's CPU goes: py-spy samples of ``promptlab serve`` under load.

Starts the same processes as :mod:`bench.sidecar_latency` (a temporary nats-server, the
minimal fake upstream, ``promptlab serve``; ``--learner`` keeps the learner in the
process tree, else ``--no-learner``), drives routed calls at ``--connections`` (default
8) for ``--duration`` seconds with the bench's load generator while ``py-spy record``
samples the sidecar (and, with ``--learner``, its children), and prints:

* the sidecar's CPU per call (user + system from /proc, all its processes), the
  figure that stays meaningful on a loaded box;
* the top functions by *self* share (samples where the function is the leaf) and by
  *inclusive* share (samples where it is anywhere on the stack), grouped by function
  and file (line numbers dropped).

Shares are of the samples taken while the process was on a CPU (py-spy's default: idle
threads are not sampled). ``--raw FILE`` keeps py-spy's collapsed stacks.

``python -m bench.sidecar_profile [--duration S] [--connections N] [--learner] [--top N]``
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.sidecar_latency import (
    PROMPT,
    ROOT,
    _cpu_seconds,
    _free_port,
    _loadavg,
    _wait_port,
    run_load,
)
from tests.support.serving import Serve, clean_env, write_config

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$")


def _short(frame: str) -> str:
    """``func (path/to/file.py:12)`` -> ``func (file.py)``, the site-packages prefix cut."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    path = match.group("file")
    for marker in ("site-packages/", "/lib/python3", "promptlab/"):
        at = path.rfind(marker)
        if at != -1:
            path = path[at + len(marker) :]
            break
    return f"{match.group('func')} ({path})"


def shares(collapsed: str) -> tuple[int, collections.Counter[str], collections.Counter[str]]:
    """``(samples, self counts, inclusive counts)`` from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    anywhere: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";")]
        # The first frame is the process/thread label py-spy adds.
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            anywhere[name] += count
    return total, own, anywhere


def _children_cpu(pid: int) -> float:
    """CPU seconds of ``pid``'s direct children (the learner child, if any)."""
    total = 0.0
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        for child in children.read_text().split():
            try:
                total += _cpu_seconds(int(child))
            except (OSError, ValueError):
                pass
    return total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=15.0, help="seconds under load")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--learner", action="store_true", help="serve with its learner")
    parser.add_argument("--top", type=int, default=30, help="functions listed per table")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--raw", type=Path, help="keep py-spy's collapsed stacks here")
    parser.add_argument("--quick", action="store_true", help="5 s under load")
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE",
        help="environment of serve (e.g. PROMPTLAB_NATS__PUBLISH_LINGER_MS=2)",
    )  # fmt: skip
    args = parser.parse_args()
    duration = 5.0 if args.quick else args.duration
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        raise SystemExit("py-spy is not installed (pip install py-spy)")

    from promptlab.events.embedded import NatsServerProcess

    print(f"load average before: {_loadavg()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="promptlab-profile-") as tmp:
        tmpdir = Path(tmp)
        nats = NatsServerProcess(tmpdir / "nats")
        nats.start()
        upstream_port, port = _free_port(), _free_port()
        upstream = subprocess.Popen(
            [sys.executable, "-m", "bench.sidecar_latency", "--upstream", str(upstream_port)],
            cwd=ROOT,
        )
        try:
            config = write_config(
                tmpdir,
                {"bench": PROMPT},
                nats_url=nats.url,
                extra=f'[providers.fake]\nkind = "openai"\napi_base = "http://127.0.0.1:{upstream_port}/v1"\nmax_retries = 0\n',
            )
            with Serve(
                config,
                learner=args.learner,
                args=["--port", str(port)],
                env=clean_env(**dict(item.split("=", 1) for item in args.env)),
                cwd=ROOT,
                ready_timeout=60,
            ) as served:
                _wait_port(upstream_port)
                run_load(port, "routed", args.connections, 2.0, 0.5)  # warm up
                raw = args.raw or tmpdir / "stacks.txt"
                record = subprocess.Popen(
                    [spy, "record", "--pid", str(served.pid), "--format", "raw",
                     "--rate", str(args.rate), "--output", str(raw), "--nonblocking",
                     *(["--subprocesses"] if args.learner else [])],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )  # fmt: skip
                time.sleep(1.0)  # py-spy attaches
                cpu, child_cpu = _cpu_seconds(served.pid), _children_cpu(served.pid)
                result = run_load(port, "routed", args.connections, duration, 0.0)
                cpu = _cpu_seconds(served.pid) - cpu
                child_cpu = _children_cpu(served.pid) - child_cpu
                record.send_signal(2)  # SIGINT: py-spy writes its output and exits
                record.wait(timeout=60)
                collapsed = raw.read_text() if raw.exists() else ""
        finally:
            upstream.terminate()
            upstream.wait(timeout=20)
            nats.stop()

    calls = max(1, result["n"] + result["errors"])
    print(
        f"{result['rps']:.0f} req/s at {args.connections} connections for {duration:g} s,"
        f" {result['errors']} errors, p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms"
    )
    print(
        f"sidecar CPU: {cpu / calls * 1e6:.0f} us per call ({cpu / calls * 1e4:.2f} CPU s per"
        f" 10,000 calls); its child processes (the learner): {child_cpu / calls * 1e6:.0f} us"
        " per call"
    )
    total, own, anywhere = shares(collapsed)
    if not total:
        print("py-spy took no samples (is ptrace allowed here?)")
        return
    print(f"\n{total} samples; top {args.top} by self share")
    for name, count in own.most_common(args.top):
        print(f"{100 * count / total:6.1f}%  {name}")
    print(f"\ntop {args.top} by inclusive share")
    for name, count in anywhere.most_common(args.top):
        print(f"{100 * count / total:6.1f}%  {name}")
    print(f"\nload average after: {_loadavg()} (the box is shared: shares, not rates, compare)")


if __name__ == "__main__":
    main()
