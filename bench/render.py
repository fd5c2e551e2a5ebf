"""Render benchmark: validate + render of a typical small prompt, p50 / p99.

Run with ``python bench/render.py`` (target: p50 <= 20 us for validate + render).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from promptlab.prompts import PromptSpec, Renderer, validate_variables

SPEC = PromptSpec.model_validate(
    {
        "id": "bench",
        "variables": [
            {"name": "code", "type": "string", "required": True, "max_length": 5000, "trim": True},
            {"name": "language", "type": "string", "default": "python", "enum": ["python", "go"]},
        ],
        "variants": [
            {
                "name": "structured",
                "model": "simulated/good",
                "system": "You are a senior engineer.",
                "template": "Give the purpose, key logic and edge cases of this "
                "{{ language }} code:\n{{ code }}",
            }
        ],
    }
)
VALUES = {"code": "def double(x):\n    return x * 2\n" * 8, "language": "python"}


def measure_us(
    fn: Callable[[], object], iterations: int, warmup: int = 1000
) -> tuple[float, float]:
    """p50 and p99 of one call of ``fn``, in microseconds (after ``warmup`` calls)."""
    for _ in range(min(warmup, iterations)):  # warm up: compile, fill caches
        fn()
    samples = []
    clock = time.perf_counter_ns
    for _ in range(iterations):
        start = clock()
        fn()
        samples.append(clock() - start)
    samples.sort()
    return samples[len(samples) // 2] / 1000, samples[int(len(samples) * 0.99)] / 1000


def main(argv: list[str] | None = None) -> None:
    """Print p50 / p99 in microseconds of validate, render, and both."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", "--iterations", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true", help="5,000 iterations")
    args = parser.parse_args(argv)
    if args.quick:
        args.iterations = 5_000
    renderer = Renderer()
    variant = SPEC.champion
    validated = validate_variables(SPEC, VALUES)
    cases: dict[str, Callable[[], object]] = {
        "validate": lambda: validate_variables(SPEC, VALUES),
        "render": lambda: renderer.render(SPEC, variant, validated),
        "validate+render": lambda: renderer.render(SPEC, variant, validate_variables(SPEC, VALUES)),
    }
    print(f"render benchmark, {args.iterations} iterations (target: validate+render p50 <= 20 us)")
    for name, fn in cases.items():
        p50, p99 = measure_us(fn, args.iterations)
        print(f"  {name:<16} p50 {p50:6.1f} us   p99 {p99:6.1f} us")


if __name__ == "__main__":
    main()
