"""What the learner's store answers: the query layer of ``promptlab stats``, ``history``,
``analytics`` and the ``/admin`` reads.

One :class:`Queries` wraps one long-lived :class:`Store`: ``serve`` creates it once (in
the app's ``cleanup_ctx``) and every ``/admin`` request reads through it; a CLI command
creates one for its single answer. The commands only parse arguments and print; the
figures come from :func:`learner.snapshots.routing.variant_figures`, the same read model
the TUI's stats snapshot uses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from promptlab.learner.analysis import analyze, rng_for
from promptlab.learner.lease import lease_status
from promptlab.learner.projection.definitions import specs_from_rows
from promptlab.learner.projection.reward import effective_promotion
from promptlab.learner.snapshots.routing import variant_figures
from promptlab.learner.storage import schema as t
from promptlab.learner.storage.history import VersionEntry, variant_history
from promptlab.learner.storage.periods import Interval, PeriodReport, period_analytics
from promptlab.learner.storage.store import Store
from promptlab.learner.storage.view import load_view
from promptlab.prompts import PromptSpec
from promptlab.prompts.config import PromotionConfig
from promptlab.prompts.routing import EXPLORATION_CAP

COUNTERS: tuple[tuple[str, str], ...] = (
    ("dead_letters", "dead-lettered events"),
    ("feedback_pending", "feedback waiting for its execution"),
    (
        "feedback_dropped",
        "feedback dropped (its execution never came within learner.feedback_wait_s)",
    ),
    ("feedback_rejected", "feedback refused (off the reward scale, or NaN)"),
    ("feedback_replaced", "feedback replaced by a later one (learner.feedback_repeat = last)"),
    ("feedback_ignored", "repeated feedback ignored (learner.feedback_repeat = first)"),
    (
        "evaluation_errors",
        "online evaluations that could not score (judge answer unparsable or off 0..1, "
        "judge call failed, evaluator raised)",
    ),
    ("evaluation_errors_offline", "the same, in experiments' trials"),
)
"""The learner counters ``stats`` shows, with what they mean."""


class Queries:
    """Reads of one store. ``prompts`` gives the prompt files (called per query, so a
    long-lived instance sees edited files); prompts defined through ``/admin`` come
    from the store itself."""

    def __init__(
        self,
        store: Store,
        *,
        promotion: PromotionConfig,
        seed: int = 0,
        prompts: Callable[[], Mapping[str, PromptSpec]] = dict,
    ) -> None:
        self.store = store
        self.promotion = promotion
        self.seed = seed
        self.prompts = prompts

    async def learner_status(self) -> dict[str, Any]:
        """The lease (is a learner active, which one) and the learner's counters."""
        lease = await lease_status(self.store)
        counters = {name: value for name, value in await self.store.dump(t.learner_counters)}
        async with self.store.engine.connect() as conn:
            pending = await conn.scalar(select(func.count()).select_from(t.pending_feedback))
        counters["feedback_pending"] = int(pending or 0)
        return {
            "lease": {**lease.to_dict(), "text": lease.describe()},
            "counters": {name: int(counters.get(name, 0)) for name, _ in COUNTERS},
        }

    async def stats(
        self, prompt_filter: str | None = None, *, show_all: bool = False
    ) -> list[dict[str, Any]]:
        """Per prompt: champion, its variants' figures, leader, lift, recommendation.

        Archived variants are left out (and counted in ``hidden_archived``) unless
        ``show_all``. A variant's entry is its :class:`~events.snapshots.VariantStats`,
        plus ``n`` (rewarded calls in the evaluation window), ``reward_interval`` and
        ``error_rate``.
        """
        files = self.prompts()
        async with self.store.engine.connect() as conn:
            rows = await conn.execute(select(t.prompt_definitions))
            defined = specs_from_rows(r._mapping for r in rows)
        out = []
        for prompt_id in await self.store.prompt_ids():
            if prompt_filter and prompt_id != prompt_filter:
                continue
            spec = files.get(prompt_id) or defined.get(prompt_id)
            config = effective_promotion(spec, self.promotion)
            cap = spec.routing.exploration_cap if spec else EXPLORATION_CAP
            view = await load_view(self.store, prompt_id, config, exploration_cap=cap)
            if view is None:
                continue
            analysis = analyze(view, rng_for(self.seed, view.last_sequence))
            figures = variant_figures(view, analysis)
            shown = [f for f in figures if show_all or f.lifecycle != "archived"]
            out.append(
                {
                    "prompt_id": prompt_id,
                    "champion": view.champion,
                    "paused": view.paused,
                    "evaluation_window": config.evaluation_window,
                    "sequence": view.last_sequence,
                    "variants": [_variant_entry(f.model_dump()) for f in shown],
                    "hidden_archived": len(figures) - len(shown),
                    "leader": analysis.leader,
                    "lift": analysis.lift,
                    "lift_interval": [analysis.lift_low, analysis.lift_high]
                    if analysis.lift_low is not None
                    else None,
                    "recommendation": analysis.recommendation,
                }
            )
        return out

    async def analytics(
        self,
        prompt_id: str,
        interval: Interval,
        start: datetime | None = None,
        end: datetime | None = None,
        top: int = 5,
    ) -> PeriodReport:
        """Per variant and period: volume, latency, errors, cost, quality and trends."""
        return await period_analytics(
            self.store, prompt_id, interval=interval, start=start, end=end, top=top
        )

    async def analytics_json(
        self, prompt_id: str, interval: str, start: datetime | None, end: datetime | None
    ) -> dict[str, Any]:
        """What ``/admin/prompts/{id}/analytics`` serves."""
        report = await self.analytics(prompt_id, interval, start, end)  # type: ignore[arg-type]
        return report.to_dict()

    async def history(self, prompt_id: str, variant: str | None = None) -> list[VersionEntry]:
        """Every version of a prompt's variants, with the figures of each."""
        return await variant_history(self.store, prompt_id, variant)

    async def history_json(self, prompt_id: str, variant: str | None) -> dict[str, Any]:
        """What ``/admin/prompts/{id}/history`` serves."""
        entries = await self.history(prompt_id, variant)
        return {"prompt_id": prompt_id, "versions": [e.to_dict() for e in entries]}


def _variant_entry(stats: dict[str, Any]) -> dict[str, Any]:
    low, high = stats["reward_low"], stats["reward_high"]
    executions = stats["executions"]
    return {
        **stats,
        "n": stats["window_rewarded"],
        "reward_interval": [low, high] if low is not None else None,
        "error_rate": stats["errors"] / executions if executions else 0.0,
    }
