"""Statistical validation of the promotion policy on simulated Bernoulli arms.

Runs the real ``learner.policy.rules.decide`` (checked after every rewarded event) under the
sidecar's Thompson routing, and the same traffic with a naive repeated t-test instead,
and prints:

* A/A (0.50 vs 0.50): false promotion rate over ``--runs`` runs of ``--horizon`` requests
  (target <= 5 %);
* power (0.50 -> 0.55): share of runs that promote the better arm within the horizon
  (target >= 90 % within 20,000 requests) and the median requests to that promotion;
* cumulative regret against a fixed equal split and against never experimenting.

``python bench/simulation.py [--runs N] [--horizon T] [--quick] [--json]``
(``--quick``: 60 runs per scenario. The full 1,000 runs took 683 s on a shared 2-core
box at load ~4.5; almost all of it is the A/A runs where a losing challenger hovers
near the retirement threshold and ``decide`` runs its Monte Carlo at every event.)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import cast

from learner.policy.simulate import Allocator, Rule, Scenario, ScenarioReport, run_scenario
from prompts.config import PromotionConfig


def _pct(x: float) -> str:
    return f"{100 * x:5.1f} %"


def _ci(rate: float, runs: int) -> str:
    # Wilson 95 % interval of a rate measured over `runs` runs.
    z = 1.959963984540054
    denom = 1 + z * z / runs
    centre = (rate + z * z / (2 * runs)) / denom
    half = z / denom * math.sqrt(rate * (1 - rate) / runs + z * z / (4 * runs * runs))
    return f"[{100 * max(0.0, centre - half):.1f}, {100 * min(1.0, centre + half):.1f}]"


def describe(r: ScenarioReport) -> list[str]:
    """Human-readable lines for one scenario."""
    head = f"{r.name:<16} {r.rule:<6} means={'/'.join(f'{m:.2f}' for m in r.means)} runs={r.runs} horizon={r.horizon}"
    lines = [head]
    aa = len(set(r.means)) == 1
    if aa:
        lines.append(
            f"  false promotion rate  {_pct(r.promoted_rate)} {_ci(r.promoted_rate, r.runs)}  (target <= 5 %)"
        )
    else:
        lines.append(
            f"  power                 {_pct(r.correct_promotion_rate)} {_ci(r.correct_promotion_rate, r.runs)}  (target >= 90 %)"
        )
        med = (
            "n/a"
            if r.median_requests_to_promotion is None
            else f"{r.median_requests_to_promotion:,.0f}"
        )
        lines.append(f"  median requests to promotion  {med}")
        lines.append(f"  best arm champion at the end  {_pct(r.final_best_rate)}")
    lines.append(
        f"  rollbacks {_pct(r.rollback_rate)}   retirements {_pct(r.retire_rate)}   challenger traffic {_pct(r.mean_challenger_share)}"
    )
    if not aa:
        lines.append(
            f"  regret  {r.mean_regret:8.1f}   equal split {r.equal_split_regret:8.1f}   champion only {r.champion_only_regret:8.1f}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=1000, help="runs per scenario (default 1000)")
    parser.add_argument(
        "--horizon", type=int, default=20_000, help="requests per run (default 20000)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="60 runs per scenario (about 30 s on 2 idle cores)"
    )
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--allocator", choices=["sidecar", "per_request"], default="sidecar")
    parser.add_argument("--exploration-cap", type=float, default=0.2)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    runs = 60 if args.quick else args.runs
    config = PromotionConfig()
    scenarios: list[tuple[str, tuple[float, ...], Rule]] = [
        ("A/A", (0.50, 0.50), "policy"),
        ("A/A", (0.50, 0.50), "naive"),
        ("+5 points", (0.50, 0.55), "policy"),
        ("+5 points", (0.50, 0.55), "naive"),
    ]
    reports = []
    start = time.perf_counter()
    for i, (name, means, rule) in enumerate(scenarios):
        sc = Scenario(
            means=means,
            horizon=args.horizon,
            exploration_cap=args.exploration_cap,
            allocator=cast(Allocator, args.allocator),
            rule=rule,
            promotion=config,
        )
        # A/A and power share seeds, so both rules see the same reward streams.
        rep = run_scenario(name, sc, runs, seed=args.seed + (i // 2), workers=args.workers)
        reports.append(rep)
        if not args.json:
            print("\n".join(describe(rep)), flush=True)
    elapsed = time.perf_counter() - start
    if args.json:
        out = {
            "runs": runs,
            "horizon": args.horizon,
            "allocator": args.allocator,
            "exploration_cap": args.exploration_cap,
            "promotion": config.model_dump(),
            "seconds": round(elapsed, 1),
            "scenarios": [r.as_dict() for r in reports],
        }
        print(json.dumps(out, indent=2))
    else:
        print(
            f"({runs} runs per scenario, {args.allocator} routing, cap {args.exploration_cap}, checks after every event; {elapsed:.0f} s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
