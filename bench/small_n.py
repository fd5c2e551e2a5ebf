"""The lab's statistics at small n, by simulation: false positives, coverage, planned power.

Three tables, each figure with its 95% Wilson interval over the simulated runs:

1. **False positives (A/A).** Two points that are the same in truth, ``n`` cases, scores
   per case drawn from a Beta distribution (continuous) or 0/1 (a success metric): the
   share of runs with p < 0.05 by the report's test (``auto``) and by the paired t-test
   the report used before (p = 0 for constant non-zero differences, which a 0/1 metric
   gives often at small n). A valid test stays at or below 5%.
2. **Coverage of the quality interval** (nominal 95%) for the report's method and for the
   Student-t interval it replaced, with the share of t intervals that leave [0, 1].
3. **Planned power.** For a true difference and spread, ``plan`` says how many cases give
   80% power; the share of simulated experiments of that size the report's test calls
   significant.
4. **Cost of the exact test** at 10 to 20 cases (wall time: depends on the machine's load).

``python -m bench.small_n [--quick]`` (quick: fewer runs, wider intervals). CPU bound;
on a loaded machine only the times change, not the rates (every run is seeded).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from scipy import stats as sp

from promptlab.lab import stats


def _rate(hits: int, runs: int) -> str:
    low, high = stats.wilson(hits, runs)
    return f"{hits / runs:.1%} [{low:.1%}, {high:.1%}]"


def _cases(values: np.ndarray) -> dict[str, float]:
    return {f"c{i:03d}": float(v) for i, v in enumerate(values)}


def _old_t_p(d: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """The report's former rule: constant differences give p = 0 (or 1 when all zero)."""
    if np.allclose(d, d[0], rtol=0.0, atol=1e-12):
        return 1.0 if abs(d[0]) <= 1e-12 else 0.0
    return float(sp.ttest_rel(a, b).pvalue)


def false_positives(runs: int, rng: np.random.Generator) -> None:
    print("False positives at alpha 0.05 (A/A: no true difference)")
    print("| metric | cases | report's test | p < 0.05 (report) | p < 0.05 (former t-test) |")
    print("|---|---|---|---|---|")
    for metric in ("0/1 (p = 0.7)", "score ~ Beta(4, 2)"):
        for n in (2, 3, 5, 8, 12):
            new = old = 0
            test = ""
            for _ in range(runs):
                if metric.startswith("0/1"):
                    a = (rng.random(n) < 0.7).astype(float)
                    b = (rng.random(n) < 0.7).astype(float)
                else:
                    case = rng.beta(4, 2, n)  # case difficulty, shared by both points
                    a = np.clip(case + rng.normal(0, 0.1, n), 0, 1)
                    b = np.clip(case + rng.normal(0, 0.1, n), 0, 1)
                result = stats.paired(_cases(a), _cases(b))
                test = result.test or test
                new += result.p is not None and result.p < 0.05
                old += n >= 2 and _old_t_p(a - b, a, b) < 0.05
            print(
                f"| {metric} | {n} | {test} | {_rate(new, runs)} | {_rate(old, runs)} |",
                flush=True,
            )


def _t_interval(values: np.ndarray) -> tuple[float, float]:
    n = len(values)
    half = float(sp.t.ppf(0.975, n - 1)) * float(values.std(ddof=1)) / np.sqrt(n)
    return float(values.mean()) - half, float(values.mean()) + half


def coverage(runs: int, rng: np.random.Generator) -> None:
    print("\nCoverage of the 95% quality interval")
    print(
        "| metric (true mean) | cases | report's method | covers (report) | covers (Student t) | t leaves [0, 1] |"
    )
    print("|---|---|---|---|---|---|")
    shapes = [
        ("0/1 (0.9)", lambda n: (rng.random(n) < 0.9).astype(float), 0.9),
        ("Beta(8, 2) (0.8)", lambda n: rng.beta(8, 2, n), 0.8),
        ("Beta(2, 2) (0.5)", lambda n: rng.beta(2, 2, n), 0.5),
        ("Beta(20, 1) (0.952)", lambda n: rng.beta(20, 1, n), 20 / 21),
    ]
    for name, draw, mean in shapes:
        for n in (3, 5, 10, 20, 30):
            hit = t_hit = t_out = 0
            methods = set()
            for _ in range(runs):
                values = draw(n)
                got = stats.mean_interval(list(values))
                assert got is not None
                methods.add(got.method)
                hit += got.low <= mean <= got.high
                if np.ptp(values) == 0:
                    low = high = float(values[0])  # the t interval of a constant sample
                else:
                    low, high = _t_interval(values)
                t_hit += low <= mean <= high
                t_out += low < 0 or high > 1
            print(
                f"| {name} | {n} | {', '.join(sorted(methods))} | {_rate(hit, runs)} "
                f"| {_rate(t_hit, runs)} | {_rate(t_out, runs)} |",
                flush=True,
            )


def planned_power(runs: int, rng: np.random.Generator) -> None:
    print("\nPower of a planned experiment (target 80%, alpha 0.05, one comparison)")
    print("| true difference | spread | planned cases | significant (report's test) |")
    print("|---|---|---|---|")
    for difference, sd in ((0.15, 0.15), (0.1, 0.08), (0.3, 0.2)):
        n = stats.cases_needed(difference, sd, 0.05)
        hits = 0
        for _ in range(runs):
            base = rng.uniform(0.2, 0.6, n)
            d = rng.normal(difference, sd, n)
            result = stats.paired(_cases(base + d), _cases(base))
            hits += result.p is not None and result.p < 0.05
        print(f"| {difference} | {sd} | {n} | {_rate(hits, runs)} |", flush=True)


def exact_cost() -> None:
    """scipy enumerates the flips in Python: the exact test's cost doubles with each case."""
    print("\nTime of one exact sign-flip test (scipy's permutation_test, all 2**n flips)")
    print("| cases | flips | seconds |")
    print("|---|---|---|")
    rng = np.random.default_rng(1)
    for n in (10, 14, 17, 20):
        a, b = rng.random(n), rng.random(n)
        start = time.perf_counter()
        stats.paired(_cases(a), _cases(b), test="permutation")
        print(f"| {n} | {2**n:,} | {time.perf_counter() - start:.3f} |", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer simulated runs")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    runs = 400 if args.quick else 2000
    rng = np.random.default_rng(20261207)
    start = time.perf_counter()
    false_positives(runs, rng)
    coverage(runs // 2, rng)
    planned_power(runs // 2, rng)
    exact_cost()
    print(f"\n({runs} runs a cell for false positives, {runs // 2} for the others; "
          f"{time.perf_counter() - start:.0f} s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
