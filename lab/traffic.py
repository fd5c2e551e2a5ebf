"""A SIMULATED application and its SIMULATED users, for the demo, tests and benchmarks.

It behaves like a real app that adopted promptlab: it calls the sidecar through the
official ``openai`` SDK with ``model="promptlab/<prompt_id>"`` and sends feedback to
``/v1/feedback``. Its "users" are not real: each variant has a hidden quality (the
probability that a simulated user gives a thumbs up), known only to this module, so a
demo can show that promptlab finds the truly better variant without being told.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

SIMULATED_LABEL = "simulated application (hidden per-variant quality; not real users)"


@dataclass(frozen=True)
class SimulatedUsers:
    """Hidden quality per variant: P(thumbs up) that a simulated user gives its answer."""

    quality: Mapping[str, float]
    feedback_name: str = "thumbs_up"
    feedback_rate: float = 1.0
    """Share of calls that get feedback at all (real users often stay silent)."""
    default_quality: float = 0.5
    """Quality of variants this module was not told about (e.g. bred by mutation)."""

    def __post_init__(self) -> None:
        for name, q in self.quality.items():
            if not 0.0 <= q <= 1.0:
                raise ValueError(f"quality of {name!r} must be within 0..1, got {q}")
        if not 0.0 <= self.feedback_rate <= 1.0:
            raise ValueError("feedback_rate must be within 0..1")

    def of(self, variant: str) -> float:
        return self.quality.get(variant, self.default_quality)

    def equal_split_expectation(self) -> float:
        """Mean reward per call if traffic were split equally between the known variants."""
        return (
            sum(self.quality.values()) / len(self.quality) if self.quality else self.default_quality
        )


@dataclass
class TrafficReport:
    """What the simulated application saw."""

    requests: int = 0
    ok: int = 0
    errors: int = 0
    feedback_sent: int = 0
    reward: float = 0.0
    """Sum of the feedback values the simulated users gave."""
    expected_reward: float = 0.0
    """Sum of the hidden qualities of the variants that answered (less noisy than ``reward``)."""
    by_variant: Counter[str] = field(default_factory=Counter)
    first_seen: dict[str, int] = field(default_factory=dict)
    """Request number at which each variant first answered."""
    elapsed_s: float = 0.0
    error_samples: list[str] = field(default_factory=list)

    def share(self, variant: str) -> float:
        return self.by_variant[variant] / self.ok if self.ok else 0.0


ProgressFn = Callable[[TrafficReport], None]


async def run_traffic(
    base_url: str,
    prompt_id: str,
    users: SimulatedUsers,
    *,
    requests: int,
    concurrency: int = 8,
    seed: int = 0,
    api_key: str = "promptlab-demo",
    variables: Callable[[random.Random, int], dict[str, Any]] | None = None,
    subjects: int = 500,
    on_progress: ProgressFn | None = None,
    progress_every: int = 250,
    stop: asyncio.Event | None = None,
    report: TrafficReport | None = None,
    start_index: int = 0,
) -> TrafficReport:
    """Send ``requests`` routed calls with feedback and return what happened.

    ``variables(rng, i)`` makes the prompt variables of call ``i``; ``subjects`` is the
    number of distinct simulated users (the ``promptlab.subject`` of each call).
    ``report`` continues an earlier report (calls are numbered from ``start_index``), so
    traffic can be sent in waves.

    Reproducible with concurrent calls: call ``i`` draws its variables and subject from
    its own generator seeded by ``(seed, i)``, and the k-th answer of variant ``v`` gets
    the feedback drawn for ``(seed, v, k)``, so the order in which calls finish changes
    nothing a variant's statistics see.
    """
    from openai import AsyncOpenAI  # the official SDK, exactly as a real app would use it

    report = report if report is not None else TrafficReport()
    client = AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=30.0)
    counter = iter(range(start_index, start_index + requests))
    started = time.perf_counter() - report.elapsed_s

    async def one(i: int) -> None:
        rng = random.Random(f"{seed}:call:{i}")
        vars_i = variables(rng, i) if variables else {}
        subject = f"user-{rng.randrange(subjects)}"
        try:
            raw = await client.chat.completions.with_raw_response.create(
                model=f"promptlab/{prompt_id}",
                messages=[],
                extra_body={"promptlab": {"variables": vars_i, "subject": subject}},
            )
        except Exception as exc:  # the report counts failures; the demo shows them
            report.errors += 1
            if len(report.error_samples) < 5:
                report.error_samples.append(f"{type(exc).__name__}: {exc}")
            return
        completion = raw.parse()
        variant = raw.headers.get("x-promptlab-variant", "?")
        answer = random.Random(f"{seed}:{variant}:{report.by_variant[variant]}")
        roll = answer.random()
        gives_feedback = answer.random() < users.feedback_rate
        report.ok += 1
        report.by_variant[variant] += 1
        report.first_seen.setdefault(variant, i + 1)
        quality = users.of(variant)
        report.expected_reward += quality
        if gives_feedback:
            value = roll < quality
            report.reward += float(value)
            await client.post(
                "/feedback",
                cast_to=object,
                body={"execution_id": completion.id, "name": users.feedback_name, "value": value},
            )
            report.feedback_sent += 1

    async def worker() -> None:
        for i in counter:
            if stop is not None and stop.is_set():
                return
            await one(i)
            report.requests += 1
            if on_progress and report.requests % progress_every == 0:
                report.elapsed_s = time.perf_counter() - started
                on_progress(report)

    try:
        await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    finally:
        await client.close()
    report.elapsed_s = time.perf_counter() - started
    return report
