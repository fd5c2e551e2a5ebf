"""Deterministic demo-like data for screenshots and tests: what a running lab looks like.

Three prompts of a simulated support bot, with fixed timestamps, so an SVG or a snapshot
test renders the same today and next year. Everything is labelled ``simulated/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from events import (
    BaseEvent,
    Bucket,
    EventBus,
    Evidence,
    ExecutionCompleted,
    FeedbackReceived,
    VariantPromoted,
    VariantRegistered,
)
from events.models import ArmEvidence, Interval
from events.snapshots import (
    ArmPosterior,
    DecisionRecord,
    RoutingSnapshot,
    StatsSnapshot,
    TrendPoint,
    VariantStats,
)

T0 = datetime(2025, 5, 14, 14, 0, 0, tzinfo=UTC)
"""The fixed "now" of the sample: every timestamp is relative to it."""
MINUTE0 = int(T0.timestamp() // 60)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


PROMOTION = VariantPromoted(
    event_id="sample-promotion-1",
    occurred_at=_at(-1260),
    prompt_id="support-reply",
    variant="empathetic-v2",
    previous_champion="baseline",
    reason="auto",
    evidence=Evidence(
        challenger=ArmEvidence(
            variant="empathetic-v2",
            n=1840,
            reward_mean=0.71,
            reward_interval=Interval(low=0.69, high=0.73),
            cost_mean_usd=0.00041,
        ),
        champion=ArmEvidence(
            variant="baseline",
            n=5210,
            reward_mean=0.64,
            reward_interval=Interval(low=0.63, high=0.65),
            cost_mean_usd=0.00038,
        ),
        p_better=0.998,
        p_value=0.0031,
        lift=0.07,
        lift_interval=Interval(low=0.045, high=0.095),
        rule="p_better>=0.95 and msprt p<0.05",
    ),
)


def _trend(variants: dict[str, tuple[int, float]], minutes: int = 40) -> list[TrendPoint]:
    """Per-minute points with a gentle, deterministic wobble (no randomness)."""
    points = []
    for m in range(minutes):
        for i, (name, (per_minute, reward)) in enumerate(sorted(variants.items())):
            wobble = ((m * 7 + i * 13) % 11 - 5) / 100
            ramp = min(1.0, (m + 1) / 12)
            points.append(
                TrendPoint(
                    minute=MINUTE0 - minutes + m,
                    variant=name,
                    executions=max(1, int(per_minute * ramp)),
                    reward_mean=round(min(1.0, max(0.0, reward + wobble)), 3),
                )
            )
    return points


def stats_snapshots() -> list[StatsSnapshot]:
    support = StatsSnapshot(
        prompt_id="support-reply",
        version=48213,
        champion="empathetic-v2",
        exploration_cap=0.2,
        variants=[
            VariantStats(
                variant="empathetic-v2",
                status="probation",
                model="simulated/gpt-small",
                origin="mutation",
                parent="baseline",
                strategy="add-empathy",
                executions=12840,
                rewarded=9120,
                reward_mean=0.712,
                reward_low=0.703,
                reward_high=0.721,
                p_best=0.81,
                traffic_share=0.83,
                cost_mean_usd=0.00041,
                tokens_mean=412,
                latency_p50_ms=182,
                latency_p95_ms=420,
            ),
            VariantStats(
                variant="concise-v3",
                status="challenger",
                model="simulated/gpt-small",
                origin="mutation",
                parent="empathetic-v2",
                strategy="shorten",
                executions=1460,
                rewarded=1010,
                reward_mean=0.724,
                reward_low=0.697,
                reward_high=0.750,
                p_best=0.18,
                p_beats_champion=0.79,
                traffic_share=0.12,
                cost_mean_usd=0.00029,
                tokens_mean=288,
                latency_p50_ms=141,
                latency_p95_ms=310,
            ),
            VariantStats(
                variant="formal-v1",
                status="challenger",
                model="simulated/gpt-large",
                origin="api",
                executions=310,
                rewarded=220,
                reward_mean=0.66,
                reward_low=0.60,
                reward_high=0.72,
                p_best=0.01,
                p_beats_champion=0.04,
                traffic_share=0.05,
                cost_mean_usd=0.0021,
                tokens_mean=530,
                latency_p50_ms=610,
                latency_p95_ms=1380,
            ),
            VariantStats(
                variant="baseline",
                status="retired",
                model="simulated/gpt-small",
                origin="config",
                executions=5210,
                rewarded=4800,
                reward_mean=0.641,
                reward_low=0.628,
                reward_high=0.654,
                p_best=0.0,
                traffic_share=0.0,
                cost_mean_usd=0.00038,
                tokens_mean=401,
                latency_p50_ms=176,
                latency_p95_ms=405,
            ),
        ],
        decisions=[
            DecisionRecord(
                sequence=51022,
                type="variant.promoted",
                variant="empathetic-v2",
                previous="baseline",
                reason="auto",
                summary="empathetic-v2 beats baseline: +0.07 reward, P(better)=0.998",
                occurred_at=PROMOTION.occurred_at.isoformat(),
            ),
            DecisionRecord(
                sequence=40910,
                type="variant.retired",
                variant="terse-v1",
                reason="P(best) < 0.01 after 900 calls",
                summary="terse-v1 retired: P(best) < 0.01 after 900 calls",
                occurred_at=_at(-2400).isoformat(),
            ),
        ],
        trend=_trend(
            {"empathetic-v2": (160, 0.71), "concise-v3": (24, 0.72), "formal-v1": (9, 0.66)}
        ),
        recommendation="keep exploring: concise-v3 needs ~2,000 more calls",
        learner_sequence=61877,
    )
    summarize = StatsSnapshot(
        prompt_id="ticket-summary",
        version=20771,
        champion="bullets",
        exploration_cap=0.1,
        variants=[
            VariantStats(
                variant="bullets",
                status="champion",
                model="simulated/gpt-small",
                executions=8420,
                rewarded=3100,
                reward_mean=0.58,
                reward_low=0.56,
                reward_high=0.60,
                p_best=0.55,
                traffic_share=0.9,
                cost_mean_usd=0.00022,
                tokens_mean=350,
                latency_p50_ms=240,
                latency_p95_ms=610,
            ),
            VariantStats(
                variant="tldr-first",
                status="challenger",
                model="simulated/gpt-small",
                origin="mutation",
                parent="bullets",
                strategy="reorder",
                executions=930,
                rewarded=350,
                reward_mean=0.59,
                reward_low=0.54,
                reward_high=0.64,
                p_best=0.45,
                p_beats_champion=0.61,
                traffic_share=0.1,
                cost_mean_usd=0.00024,
                tokens_mean=362,
                latency_p50_ms=251,
                latency_p95_ms=640,
            ),
        ],
        trend=_trend({"bullets": (140, 0.58), "tldr-first": (15, 0.59)}),
        recommendation="keep exploring",
        learner_sequence=61877,
    )
    classify = StatsSnapshot(
        prompt_id="intent-classify",
        version=9112,
        champion="few-shot",
        paused=True,
        exploration_cap=0.2,
        variants=[
            VariantStats(
                variant="few-shot",
                status="champion",
                model="simulated/gpt-tiny",
                executions=30110,
                rewarded=30110,
                reward_mean=0.93,
                reward_low=0.927,
                reward_high=0.933,
                p_best=0.97,
                traffic_share=1.0,
                cost_mean_usd=0.00006,
                tokens_mean=190,
                latency_p50_ms=88,
                latency_p95_ms=160,
            ),
            VariantStats(
                variant="zero-shot",
                status="challenger",
                model="simulated/gpt-tiny",
                executions=2100,
                rewarded=2100,
                reward_mean=0.90,
                reward_low=0.887,
                reward_high=0.913,
                p_best=0.03,
                p_beats_champion=0.02,
                traffic_share=0.0,
                cost_mean_usd=0.00004,
                tokens_mean=120,
                latency_p50_ms=70,
                latency_p95_ms=130,
            ),
        ],
        decisions=[
            DecisionRecord(
                sequence=58000,
                type="exploration.paused",
                reason="operator",
                summary="exploration paused by operator: quarter-end freeze",
                occurred_at=_at(-600).isoformat(),
            ),
            DecisionRecord(
                sequence=21000,
                type="variant.rolled_back",
                variant="cot-v1",
                previous="few-shot",
                reason="auto",
                summary="cot-v1 rolled back: p95 latency 2.4x the champion's",
                occurred_at=_at(-86_400).isoformat(),
            ),
        ],
        trend=_trend({"few-shot": (300, 0.93)}, minutes=40),
        recommendation="paused: champion only",
        learner_sequence=61877,
    )
    return [support, summarize, classify]


def routing_snapshots() -> list[RoutingSnapshot]:
    """Posteriors consistent with :func:`stats_snapshots` (successes + 1, failures + 1)."""
    out = []
    for stats in stats_snapshots():
        arms = []
        for v in stats.variants:
            if v.reward_mean is None:
                continue
            wins = v.reward_mean * v.rewarded
            arms.append(
                ArmPosterior(
                    variant=v.variant, alpha=wins + 1, beta=v.rewarded - wins + 1, status=v.status
                )
            )
        out.append(
            RoutingSnapshot(
                prompt_id=stats.prompt_id,
                version=stats.version,
                champion=stats.champion,
                arms=arms,
                exploration_cap=stats.exploration_cap,
                paused=stats.paused,
            )
        )
    return out


TEMPLATES = {
    ("support-reply", "baseline"): (
        "You are a support agent for {{ product }}.",
        "Customer wrote:\n{{ message }}\n\nReply helpfully.",
    ),
    ("support-reply", "empathetic-v2"): (
        "You are a warm, patient support agent for {{ product }}. Acknowledge the "
        "customer's feeling in one sentence before solving the problem.",
        "Customer wrote:\n{{ message }}\n\nReply in under 120 words. End with one clear next step.",
    ),
    ("support-reply", "concise-v3"): (
        "You are a support agent for {{ product }}. Be brief and kind.",
        "Customer wrote:\n{{ message }}\n\nReply in at most 3 sentences with the fix first.",
    ),
    ("support-reply", "formal-v1"): (
        "You are a formal customer service representative.",
        "Message:\n{{ message }}\n\nCompose a formal reply.",
    ),
    ("ticket-summary", "bullets"): (None, "Summarize this ticket as 3 bullets:\n{{ ticket }}"),
    ("ticket-summary", "tldr-first"): (None, "TL;DR in one line, then 3 bullets:\n{{ ticket }}"),
    ("intent-classify", "few-shot"): (
        "Classify the intent. Answer with one label.",
        "Examples:\n{{ examples }}\n\nText: {{ text }}\nLabel:",
    ),
    ("intent-classify", "zero-shot"): (
        "Classify the intent. Answer with one label.",
        "Text: {{ text }}\nLabel:",
    ),
}


def registrations() -> list[VariantRegistered]:
    stats = {s.prompt_id: {v.variant: v for v in s.variants} for s in stats_snapshots()}
    out = []
    for (prompt_id, variant), (system, template) in TEMPLATES.items():
        v = stats[prompt_id][variant]
        out.append(
            VariantRegistered(
                event_id=f"sample-reg-{prompt_id}-{variant}",
                occurred_at=_at(-7200),
                prompt_id=prompt_id,
                variant=variant,
                version="v-" + variant,
                model=v.model,
                params={"temperature": 0.3},
                system=system,
                template=template,
                champion=variant == "baseline"
                or (prompt_id != "support-reply" and v.status == "champion"),
                origin=v.origin,  # type: ignore[arg-type]
                parent=v.parent,
                strategy=v.strategy,
            )
        )
    return out


def executions(count: int = 24) -> Iterator[BaseEvent]:
    """Recent calls to support-reply and their feedback, seconds apart."""
    plan = ["empathetic-v2"] * 5 + ["concise-v3", "empathetic-v2", "formal-v1"]
    for i in range(count):
        variant = plan[i % len(plan)]
        exec_id = f"sample-exec-{i:04d}"
        failed = i % 17 == 16
        yield ExecutionCompleted(
            event_id=f"sample-ev-{i:04d}",
            occurred_at=_at(-count + i),
            execution_id=exec_id,
            prompt_id="support-reply",
            variant=variant,
            model="simulated/gpt-small",
            provider="simulated",
            latency_ms=150 + (i * 37) % 260,
            input_tokens=300 + (i * 11) % 90,
            output_tokens=80 + (i * 7) % 40,
            cost_usd=0.00035 + (i % 5) * 0.00002,
            status="error" if failed else "ok",
            error_kind="upstream_timeout" if failed else None,
        )
        if not failed and i % 3 != 2:
            yield FeedbackReceived(
                event_id=f"sample-fb-{i:04d}",
                occurred_at=_at(-count + i + 0.5),
                execution_id=exec_id,
                name="resolved",
                value=i % 4 != 0,
            )


def history() -> list[BaseEvent]:
    """The events a TUI reads as history: registrations, the promotion, recent calls."""
    return [*registrations(), PROMOTION, *executions()]


async def load(bus: EventBus) -> None:
    """Put the sample on ``bus``: snapshots in KV, history on the stream."""
    for stats in stats_snapshots():
        await bus.kv_put(str(Bucket.STATS), stats.prompt_id, stats.encode())
    for routing in routing_snapshots():
        await bus.kv_put(str(Bucket.ROUTING), routing.prompt_id, routing.encode())
    await bus.publish_many(history())
