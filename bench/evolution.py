"""Evolution search strategies on a SIMULATED task with a known optimum (1.0).

Runs each search (genetic, hill_climbing, annealing, pareto) with the real search code
(``lab.search.evolve``) against the simulated task of :mod:`bench.evolution_task`: a
pure in-process fitness (the simulated model's quality depends on known properties of
the prompt text) and a simulated mutator that makes plausible edits. Every strategy
gets the same call budget (mutator calls plus one simulated model call per test case
per evaluation) and the same seeds, and the bench prints the mean best fitness by
generation and the calls needed to reach 90% of the optimum.

``python -m bench --only evolution [--quick]`` or ``python bench/evolution.py
[--seeds N] [--max-calls N] [--population P] [--json]``. All figures are SIMULATED.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import record
from bench.evolution_task import (
    CASES,
    OPTIMUM,
    SEED_SYSTEM,
    SEED_TEMPLATE,
    case_quality,
    simulated_mutation,
)
from promptlab.lab.mutation import FailingCase, MutantDraft, Mutation, MutationRequest
from promptlab.lab.search import SEARCHES, Candidate, Evaluation, EvolutionConfig, evolve
from promptlab.prompts import PromptSpec, VariantSpec

TARGET = 0.9 * OPTIMUM


def simulated_prompt() -> PromptSpec:
    return PromptSpec(
        id="simulated-summarize",
        description="SIMULATED task for the evolution bench",
        variables=[{"name": "code", "type": "string", "required": True}],
        variants=[
            {
                "name": "seed",
                "model": "simulated/model",
                "system": SEED_SYSTEM,
                "template": SEED_TEMPLATE,
            }
        ],
    )


@dataclass
class Counter:
    calls: int = 0


@dataclass
class SimulatedFitness:
    """Mean simulated quality over the cases; one simulated model call per case."""

    counter: Counter

    async def evaluate(self, variants: Sequence[VariantSpec]) -> list[Evaluation]:
        out = []
        for variant in variants:
            scores, failures = {}, []
            for case in CASES:
                quality, reasons = case_quality(variant.system, variant.template, case)
                scores[case] = quality
                if quality < 1.0:
                    failures.append(
                        FailingCase(
                            case,
                            {"code": "..."},
                            "(simulated)",
                            None,
                            quality,
                            {"simulated": quality},
                            reasons,
                        )
                    )
            self.counter.calls += len(CASES)
            out.append(
                Evaluation(
                    fitness=float(np.mean(list(scores.values()))),
                    case_scores=scores,
                    failures=failures,
                    calls=len(CASES),
                )
            )
        return out


@dataclass
class SimulatedMutator:
    counter: Counter
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))

    async def mutate(self, request: MutationRequest) -> Mutation:
        self.counter.calls += 1
        other = (request.other.system, request.other.template) if request.other else None
        reasons = [r for f in request.failures for r in f.reasons]
        answer = simulated_mutation(
            request.operator,
            request.parent.system,
            request.parent.template,
            self.rng,
            other=other,
            reasons=reasons,
        )
        draft = MutantDraft(answer["system"], str(answer["template"]), str(answer["rationale"]))
        return Mutation(draft=draft, cost_usd=0.0)


@dataclass
class RunTrace:
    best_by_generation: list[float]
    calls_to_target: int | None
    final_best: float
    rejected: int


async def run_once(search: str, seed: int, max_calls: int, population: int) -> RunTrace:
    counter = Counter()
    prompt = simulated_prompt()
    reached: list[int] = []

    async def on_candidate(candidate: Candidate) -> None:
        if candidate.fitness >= TARGET and not reached:
            reached.append(counter.calls)

    config = EvolutionConfig(
        generations=10_000,
        population=population,
        search=search,
        max_calls=max_calls,
        seed=seed,
        diversity=1.0,
    )
    result = await evolve(
        prompt,
        prompt.champion,
        fitness=SimulatedFitness(counter),
        mutator=SimulatedMutator(counter, np.random.default_rng(1000 + seed)),
        config=config,
        calls_per_evaluation=len(CASES),
        on_candidate=on_candidate,
    )
    return RunTrace(
        best_by_generation=[result.seed.fitness] + [g.best for g in result.generations],
        calls_to_target=reached[0] if reached else None,
        final_best=max(c.fitness for c in result.candidates),
        rejected=len(result.rejected),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--max-calls", type=int, default=300)
    parser.add_argument("--population", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="5 seeds")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--out",
        metavar="FILE",
        help="also write the figures as JSON (bench/results/evolution.json)",
    )
    args = parser.parse_args()
    load_before = record.loadavg()
    seeds = 5 if args.quick else args.seeds
    report = {}
    print(
        f"SIMULATED task, optimum {OPTIMUM}, budget {args.max_calls} calls per run "
        f"(mutator + {len(CASES)} simulated model calls per evaluation), population "
        f"{args.population}, {seeds} seeds"
    )
    for search in SEARCHES:
        traces = [
            asyncio.run(run_once(search, s, args.max_calls, args.population)) for s in range(seeds)
        ]
        width = max(len(t.best_by_generation) for t in traces)
        by_gen = [
            statistics.fmean(
                t.best_by_generation[min(g, len(t.best_by_generation) - 1)] for t in traces
            )
            for g in range(width)
        ]
        reached = [t.calls_to_target for t in traces if t.calls_to_target is not None]
        report[search] = {
            "best_by_generation": [round(x, 4) for x in by_gen],
            "reached_90pct": f"{len(reached)}/{seeds}",
            "calls_to_90pct_median": statistics.median(reached) if reached else None,
            "final_best_mean": round(statistics.fmean(t.final_best for t in traces), 4),
            "rejected_mean": round(statistics.fmean(t.rejected for t in traces), 1),
        }
    if args.out:
        data = {
            "seeds": seeds,
            "max_calls": args.max_calls,
            "population": args.population,
            "searches": report,
        }
        record.write(args.out, "bench.evolution", sys.argv[1:], data, load_before)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"{'search':<14} {'final best':>10} {'reach 90%':>9} {'calls to 90%':>12}  best by generation"
    )
    for search, row in report.items():
        gens = " ".join(f"{x:.2f}" for x in row["best_by_generation"][:11])
        calls = row["calls_to_90pct_median"]
        print(
            f"{search:<14} {row['final_best_mean']:>10.3f} {row['reached_90pct']:>9} "
            f"{calls if calls is not None else '-':>12}  {gens}"
        )
    print(
        "(best so far at generations 0..10, mean over seeds; calls to 90%: median over the "
        "seeds that reached it; SIMULATED)"
    )


if __name__ == "__main__":
    main()
