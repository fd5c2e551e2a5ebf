"""Run every benchmark and print its figures: ``python -m bench [--only NAME ...] [--quick]``.

Benchmarks are measurements, not pass/fail tests: each prints medians and ratios
measured in this one run, on this machine.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time

BENCHMARKS = {
    "render": "bench.render",
    "nats_start": "bench.nats_start",
    "sidecar": "bench.sidecar_latency",
    "sidecar_profile": "bench.sidecar_profile",
    "sidecar_startup": "bench.sidecar_startup",
    "peers": "bench.peers",
    "replay": "bench.replay",
    "simulation": "bench.simulation",
    "decision": "bench.decision",
    "evolution": "bench.evolution",
    "small_n": "bench.small_n",
    "real": "bench.real",
    "demos": "bench.demos",
}
OPT_IN = {"real"}
"""Run only when named with --only: ``real`` needs a local model server (make bench-real)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS), help="run only these")
    parser.add_argument("--quick", action="store_true", help="shorter runs (less precise figures)")
    args = parser.parse_args(argv)
    names = args.only or [name for name in BENCHMARKS if name not in OPT_IN]
    failed = 0
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        start = time.perf_counter()
        module = importlib.import_module(BENCHMARKS[name])
        # Each script parses sys.argv itself, as when run alone.
        sys.argv = [BENCHMARKS[name], *(["--quick"] if args.quick else [])]
        try:
            module.main()
        except SystemExit as exc:  # argparse errors and sys.exit() in a script
            if exc.code not in (0, None):
                failed += 1
                print(f"{name}: FAILED: exit status {exc.code}", flush=True)
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            failed += 1
            print(f"{name}: FAILED: {type(exc).__name__}: {exc}", flush=True)
        print(f"({name} took {time.perf_counter() - start:.1f} s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
