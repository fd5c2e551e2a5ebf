"""The plain model: snapshots and events in, rows and plots out (no app, no bus)."""

from __future__ import annotations

from typing import Any

from promptlab.events import (
    CommandRejected,
    ExecutionCompleted,
    FeedbackReceived,
    KVEntry,
    VariantPromoted,
)
from promptlab.events.snapshots import ArmPosterior
from promptlab.tui import sample
from promptlab.tui.health import assess
from promptlab.tui.live_prompt import FEED_SIZE
from promptlab.tui.plots import beta_pdf, density_rows, sparkline, trend_series
from promptlab.tui.state import LabState
from promptlab.tui.views import (
    blended_cost,
    challenger_traffic,
    decisions_text,
    lineage,
    overview_row,
    template_text,
)


def loaded_state() -> LabState:
    state = LabState()
    for i, stats in enumerate(sample.stats_snapshots(), 1):
        state.apply_stats(KVEntry(stats.prompt_id, stats.encode(), i), now=1.0)
    for i, routing in enumerate(sample.routing_snapshots(), 1):
        state.apply_routing(KVEntry(routing.prompt_id, routing.encode(), i))
    for event in sample.history():
        state.apply_event(event, now=1.0, live=False)
    return state


def test_overview_row_summarises_a_prompt() -> None:
    state = loaded_state()
    support = state.prompts["support-reply"]

    cells = [str(c) for c in overview_row(support)]

    assert cells[0] == "support-reply"
    assert cells[1] == "empathetic-v2"
    assert (
        cells[2] == "2"
    )  # concise-v3, formal-v1; not the champion on probation, not retired baseline
    assert cells[3] == "17%"
    assert cells[4] == "0.71 ±.01"
    assert cells[5] == "0.79"  # best challenger's P(beats champion)
    assert challenger_traffic(support) == 0.12 + 0.05
    assert (
        abs((blended_cost(support) or 0) - (0.83 * 0.00041 + 0.12 * 0.00029 + 0.05 * 0.0021))
        < 1e-12
    )
    assert "↑ empathetic-v2" in cells[8]


def test_older_kv_revision_is_ignored_after_a_rewatch() -> None:
    state = loaded_state()
    newer = sample.stats_snapshots()[0].model_copy(update={"champion": "concise-v3"})
    state.apply_stats(KVEntry("support-reply", newer.encode(), 10), now=2.0)
    old = sample.stats_snapshots()[0]

    state.apply_stats(KVEntry("support-reply", old.encode(), 1), now=3.0)

    assert state.prompts["support-reply"].champion == "concise-v3"
    assert state.last_snapshot_at == 2.0


def test_feed_is_bounded_and_feedback_lands_on_its_execution() -> None:
    state = LabState()
    for i in range(FEED_SIZE + 10):
        state.apply_event(
            ExecutionCompleted(
                execution_id=f"e{i}",
                prompt_id="p",
                variant="a",
                model="m",
                provider="simulated",
                latency_ms=10,
            ),
            now=1.0,
        )
    state.apply_event(
        FeedbackReceived(execution_id=f"e{FEED_SIZE + 9}", name="thumbs", value=True), now=2.0
    )
    state.apply_event(
        FeedbackReceived(execution_id="e0", name="thumbs", value=True), now=2.0
    )  # evicted

    feed = state.prompts["p"].executions
    assert len(feed) == FEED_SIZE
    assert feed[-1].feedback == {"thumbs": True}
    assert state.last_traffic_at == 2.0


def test_unrouted_and_offline_calls_are_not_a_prompts_traffic() -> None:
    state = LabState()
    state.apply_event(
        ExecutionCompleted(execution_id="x", model="m", provider="p", latency_ms=1), now=1.0
    )
    state.apply_event(
        ExecutionCompleted(
            execution_id="y",
            prompt_id="p",
            variant="a",
            model="m",
            provider="p",
            latency_ms=1,
            source="offline",
        ),
        now=1.0,
    )
    assert state.prompts == {}
    assert state.last_traffic_at is None


def test_decision_log_merges_snapshot_records_with_event_evidence() -> None:
    state = loaded_state()

    entries = state.prompts["support-reply"].decisions()

    assert [e.kind for e in entries] == ["promoted", "retired"]  # one promotion, not two
    assert entries[0].evidence is not None
    text = decisions_text(entries).plain
    assert "P(better)=0.998" in text and "rule: p_better>=0.95" in text


def test_a_live_promotion_is_a_toast_but_history_is_not() -> None:
    state = loaded_state()
    assert not state.notices
    state.apply_event(
        VariantPromoted(
            prompt_id="ticket-summary", variant="tldr-first", previous_champion="bullets"
        ),
        now=5.0,
    )
    assert state.notices[-1].title == "Promotion"
    assert state.prompts["ticket-summary"].last_switch().variant == "tldr-first"  # type: ignore[union-attr]


def test_refusal_names_the_command_this_tui_sent() -> None:
    state = LabState()
    state.command_sent("cmd-1", "promote b on p")

    state.apply_event(
        CommandRejected(command_id="cmd-1", prompt_id="p", reason="b is retired"), now=1.0
    )

    notice = state.notices[-1]
    assert notice.severity == "error"
    assert notice.text == "promote b on p was refused: b is retired"
    assert "cmd-1" not in state.pending


def test_lineage_is_parent_to_child() -> None:
    state = loaded_state()
    roots = lineage(state.prompts["support-reply"])
    by_name = {r.variant: r for r in roots}
    assert set(by_name) == {"baseline", "formal-v1"}
    (child,) = by_name["baseline"].children
    assert child.variant == "empathetic-v2"
    assert [c.variant for c in child.children] == ["concise-v3"]
    assert "← shorten" in child.children[0].label.plain


def test_template_of_a_registered_variant() -> None:
    state = loaded_state()
    text = template_text(state.prompts["support-reply"], "concise-v3").plain
    assert "at most 3 sentences" in text and "from empathetic-v2 by shorten" in text
    assert "not seen yet" in template_text(state.prompts["support-reply"], "terse-v1").plain


def test_health() -> None:
    state = LabState()
    common: dict[str, Any] = {
        "started_at": 0.0,
        "connected": True,
        "ever_connected": True,
        "connect_error": None,
        "stale_after_s": 10.0,
    }
    assert assess(state, now=1.0, **common).text == "connected, waiting for stats"
    assert "learner offline" in assess(state, now=11.0, **common).text

    state.last_snapshot_at = 20.0
    state.last_traffic_at = 15.0  # quiet since the snapshot: fine however long
    assert assess(state, now=500.0, **common).level == "ok"
    state.last_traffic_at = 25.0  # traffic after the snapshot and 10 s without a new one
    assert assess(state, now=29.0, **common).level == "ok"
    assert assess(state, now=31.0, **common).text.startswith("learner offline")

    down: dict[str, Any] = {**common, "connected": False}
    assert assess(state, now=31.0, **down).text.startswith("reconnecting")
    never: dict[str, Any] = {
        **down,
        "ever_connected": False,
        "connect_error": "BusUnavailable: refused",
    }
    health = assess(state, now=31.0, **never)
    assert (
        health.level == "error" and "cannot connect to NATS: BusUnavailable: refused" in health.text
    )


def test_sparkline_scales_and_marks_gaps() -> None:
    assert sparkline([0.0, 0.5, 1.0, None], low=0.0, high=1.0) == "▁▅█·"
    assert sparkline([]) == ""


def test_trend_series_gives_share_per_minute() -> None:
    stats = sample.stats_snapshots()[1]
    minutes, reward, share = trend_series(stats.trend, ["bullets", "tldr-first"])
    assert len(minutes) == 40
    last = len(minutes) - 1
    assert abs((share["bullets"][last] or 0) + (share["tldr-first"][last] or 0) - 1.0) < 1e-9
    assert reward["bullets"][last] is not None


def test_beta_density_peaks_at_the_mean() -> None:
    arms = [
        ArmPosterior(variant="a", alpha=301, beta=101),
        ArmPosterior(variant="b", alpha=11, beta=11),
    ]
    low, high, rows = density_rows(arms, 40)
    assert low < 0.5 < 0.75 < high
    sharp = rows[0][1]
    peak_x = low + (high - low) * (sharp.index("█") + 0.5) / 40
    assert abs(peak_x - 0.75) < 0.03
    assert "█" not in rows[1][1]  # the wide posterior is lower on the shared scale
    assert beta_pdf(0.5, 1, 1) == 1.0


def test_health_names_the_active_learner_and_notices_when_it_stops() -> None:
    from promptlab.events.snapshots import LearnerStatus

    state = LabState()
    common: dict[str, Any] = {
        "started_at": 0.0,
        "connected": True,
        "ever_connected": True,
        "connect_error": None,
        "stale_after_s": 10.0,
    }
    state.last_snapshot_at = 1.0
    assert assess(state, now=2.0, **common).text == "live"
    status = LearnerStatus(state="active", holder="h:7:x", host="h", pid=7)
    state.learner, state.learner_seen_at = status, 2.0
    assert assess(state, now=3.0, **common).text == "live · learner active: h pid 7"
    assert "silent for 10s" in assess(state, now=12.0, **common).text
    state.learner = status.model_copy(update={"state": "stopped"})
    health = assess(state, now=3.0, **common)
    assert health.level == "warn" and "no active learner" in health.text


def test_the_sample_fixture_is_data_and_labelled_simulated() -> None:
    models = {v.model for s in sample.stats_snapshots() for v in s.variants}
    models |= {e.model for e in sample.history() if hasattr(e, "model")}
    assert models and all(m.startswith("simulated/") for m in models)
    assert {r.prompt_id for r in sample.routing_snapshots()} == {
        s.prompt_id for s in sample.stats_snapshots()
    }
    assert max(e.occurred_at for e in sample.history()) <= sample.T0


def test_analytics_snapshots_by_revision_and_a_bad_one_is_counted() -> None:
    state = LabState()
    [snapshot] = sample.analytics_snapshots()
    state.apply_analytics(KVEntry("support-reply", snapshot.encode(), 5))
    prompt = state.prompts["support-reply"]
    assert prompt.analytics is not None and prompt.analytics.interval("day") is not None
    revision = state.revision
    state.apply_analytics(KVEntry("support-reply", b"{not json", 4))  # older: dropped unread
    state.apply_analytics(KVEntry("support-reply", b"{not json", 6))
    assert (state.bad_snapshots, state.revision, prompt.analytics is not None) == (
        1,
        revision,
        True,
    )
    state.apply_analytics(KVEntry("support-reply", None, 7))  # deleted
    assert prompt.analytics is None and state.revision == revision + 1
