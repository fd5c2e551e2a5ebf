"""The app driven through Textual's pilot on the in-memory bus, as an operator would."""

from __future__ import annotations

import time

from textual.pilot import Pilot
from textual.widgets import DataTable
from tui_helpers import FakeClock, screen_text, toasts, until

from promptlab.events import (
    BaseEvent,
    Bucket,
    BusUnavailable,
    CommandRejected,
    ExecutionCompleted,
    LifecycleCommand,
    PauseCommand,
    PromoteCommand,
    RollbackCommand,
    VariantRegistered,
)
from promptlab.events.memory import MemoryBus
from promptlab.tui import PromptLabApp, make_tui, sample
from promptlab.tui.screens.confirm import ConfirmScreen
from promptlab.tui.screens.detail import DetailScreen
from promptlab.tui.screens.overview import OverviewScreen


async def commands(bus: MemoryBus) -> list[BaseEvent]:
    return [
        e
        async for _, e, _ in bus.read(1)
        if isinstance(e, PromoteCommand | RollbackCommand | PauseCommand | LifecycleCommand)
    ]


async def loaded_app(
    clock: FakeClock | None = None, **options: float
) -> tuple[MemoryBus, PromptLabApp]:
    bus = MemoryBus()
    await sample.load(bus)
    app = make_tui(bus, clock=clock or FakeClock(), **options)  # type: ignore[arg-type]
    return bus, app


def prompts_table(app: PromptLabApp) -> DataTable[object]:
    return app.screen.query_one("#prompts", DataTable)


async def open_support_reply(pilot: Pilot[None], app: PromptLabApp) -> DetailScreen:
    await until(pilot, lambda: prompts_table(app).row_count == 3)
    await pilot.press("down", "enter")  # rows are sorted: intent-classify, support-reply, ...
    await until(pilot, lambda: isinstance(app.screen, DetailScreen))
    screen = app.screen
    assert isinstance(screen, DetailScreen)
    await until(pilot, lambda: screen.query_one("#variants", DataTable).row_count == 4)
    return screen


async def test_overview_shows_one_row_per_prompt() -> None:
    _, app = await loaded_app()
    async with app.run_test(size=(120, 30), notifications=True) as pilot:
        await until(pilot, lambda: prompts_table(app).row_count == 3)
        table = prompts_table(app)
        support = [str(c) for c in table.get_row("support-reply")]
        assert support[:6] == ["support-reply", "empathetic-v2", "2", "17%", "0.71 ±.01", "0.79"]
        assert support[6:8] == ["$0.48", "420ms"]
        await until(pilot, lambda: "↑ empathetic-v2" in screen_text(app))
        text = screen_text(app)
        assert "Recent decisions" in text and "exploration paused by operator" in text
        assert "● live" in text


async def test_detail_shows_variants_plots_lineage_feed_log_and_template() -> None:
    _, app = await loaded_app()
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        screen = await open_support_reply(pilot, app)
        variants = screen.query_one("#variants", DataTable)
        assert [str(c) for c in variants.get_row("concise-v3")][:6] == [
            "concise-v3",
            "challenger",
            "1,460",
            "0.72 [.70,.75]",
            "0.18",
            "12%",
        ]
        assert "Reward per minute" in screen_text(app)
        await pilot.press("2")
        await until(pilot, lambda: "Posterior of reward" in screen_text(app))
        await pilot.press("3")
        await until(pilot, lambda: "← shorten" in screen_text(app))
        await pilot.press("4")
        await until(pilot, lambda: screen.query_one("#feed", DataTable).row_count == 24)
        assert "resolved ✓" in screen_text(app)
        await pilot.press("5")
        await until(pilot, lambda: "P(better)=0.998" in screen_text(app))
        await pilot.press("6", "down")  # template of the variant under the cursor: concise-v3
        await until(pilot, lambda: "at most 3 sentences" in screen_text(app))
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, OverviewScreen))


async def test_promote_asks_then_publishes_a_command() -> None:
    bus, app = await loaded_app()
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await open_support_reply(pilot, app)
        await pilot.press("down", "p")  # cursor on concise-v3
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "Promote concise-v3 to champion of support-reply?" in screen_text(app)
        assert await commands(bus) == []
        await pilot.press("y")
        await until(
            pilot, lambda: len(app.state.pending) == 1 and "Command sent" in screen_text(app)
        )
        (command,) = await commands(bus)
        assert isinstance(command, PromoteCommand)
        assert (command.prompt_id, command.variant, command.actor) == (
            "support-reply",
            "concise-v3",
            "tui",
        )

        await bus.publish(
            CommandRejected(
                command_id=command.event_id,
                prompt_id="support-reply",
                reason="concise-v3 has too few observations",
            )
        )
        await until(pilot, lambda: "too few observations" in screen_text(app))
        assert (
            "Command refused: promote concise-v3 on support-reply was refused: "
            "concise-v3 has too few observations"
        ) in toasts(app)
        await pilot.press("5")
        await until(pilot, lambda: "REJECTED" in screen_text(app))


async def test_lifecycle_keys_ask_then_publish_a_command() -> None:
    bus, app = await loaded_app()
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await open_support_reply(pilot, app)
        await pilot.press("down", "D")  # cursor on concise-v3
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "Deprecate concise-v3 of support-reply?" in screen_text(app)
        await pilot.press("y")
        await until(pilot, lambda: len(app.state.pending) == 1)
        (command,) = await commands(bus)
        assert isinstance(command, LifecycleCommand)
        assert (command.variant, command.status, command.actor) == (
            "concise-v3",
            "deprecated",
            "tui",
        )
        await pilot.press("X")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")  # cancelled: nothing more sent
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        await pilot.pause(0.1)
        assert len(await commands(bus)) == 1


async def test_cancel_sends_nothing_and_champion_cannot_be_promoted() -> None:
    bus, app = await loaded_app()
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await open_support_reply(pilot, app)
        await pilot.press("down", "p")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        await pilot.press("up", "p")  # the champion
        await until(pilot, lambda: "already the champion" in screen_text(app))
        assert isinstance(app.screen, DetailScreen)
        await pilot.pause(0.1)
        assert await commands(bus) == []


async def test_pause_and_rollback_from_the_overview() -> None:
    bus, app = await loaded_app()
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await until(pilot, lambda: prompts_table(app).row_count == 3)
        await pilot.press("s")  # intent-classify is paused: this resumes it
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: len(app.state.pending) == 1)
        await pilot.press("down", "r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: len(app.state.pending) == 2)
        pause, rollback = await commands(bus)
        assert (
            isinstance(pause, PauseCommand)
            and pause.prompt_id == "intent-classify"
            and not pause.paused
        )
        assert isinstance(rollback, RollbackCommand) and rollback.prompt_id == "support-reply"


async def test_a_failed_publish_is_reported() -> None:
    bus, app = await loaded_app()
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await open_support_reply(pilot, app)
        bus.set_available(False)
        await until(pilot, lambda: "reconnecting" in screen_text(app))
        await pilot.press("down", "p")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: "Command not sent" in screen_text(app))
        assert app.state.pending == {}
        bus.set_available(True)
        await until(pilot, lambda: "● live" in screen_text(app))


async def test_learner_offline_when_snapshots_stop_while_traffic_flows() -> None:
    clock = FakeClock()
    bus, app = await loaded_app(clock, stale_after_s=5.0)
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await until(pilot, lambda: "● live" in screen_text(app))
        clock.advance(60)  # quiet for a minute: not offline, the learner has nothing to say
        await pilot.pause(0.3)
        assert "● live" in screen_text(app)
        await bus.publish(
            ExecutionCompleted(
                execution_id="late",
                prompt_id="support-reply",
                variant="concise-v3",
                model="simulated/x",
                provider="simulated",
                latency_ms=5,
            )
        )
        await until(pilot, lambda: app.state.last_traffic_at == clock.now)
        clock.advance(6)
        await until(
            pilot,
            lambda: "learner offline: no stats for 66s while traffic flows" in screen_text(app),
        )
        stats = sample.stats_snapshots()[0]
        await bus.kv_put(str(Bucket.STATS), stats.prompt_id, stats.encode())
        await until(pilot, lambda: "● live" in screen_text(app))


async def test_no_snapshot_at_all_is_learner_offline() -> None:
    clock = FakeClock()
    app = make_tui(MemoryBus(), clock=clock, stale_after_s=5.0)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await until(pilot, lambda: "waiting for stats" in screen_text(app))
        assert "No prompts yet" in screen_text(app)
        clock.advance(5)
        await until(
            pilot, lambda: "learner offline: no stats snapshot received" in screen_text(app)
        )


class UnreachableBus(MemoryBus):
    """A bus whose server is down: start() fails, as JetStreamBus does."""

    attempts = 0

    @property
    def connected(self) -> bool:
        return False

    async def start(self) -> None:
        self.attempts += 1
        raise BusUnavailable("cannot connect to NATS at 127.0.0.1:1: connection refused")


async def test_cannot_connect_is_said_clearly_and_retried() -> None:
    bus = UnreachableBus()
    app = make_tui(bus)
    app.feed.retry_s = 0.05
    async with app.run_test(size=(100, 24), notifications=True) as pilot:
        await until(pilot, lambda: "cannot connect to NATS: BusUnavailable" in screen_text(app))
        await until(pilot, lambda: bus.attempts >= 3)


async def test_a_burst_of_events_is_coalesced_into_few_redraws() -> None:
    bus, app = await loaded_app(refresh_hz=4.0)
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        screen = await open_support_reply(pilot, app)
        draws = 0
        original = screen.show

        def counting_show(state: object) -> None:
            nonlocal draws
            draws += 1
            original(state)  # type: ignore[arg-type]

        screen.show = counting_show  # type: ignore[method-assign]
        started = time.monotonic()
        # 1,000 executions over about 2 seconds: 500 events/s.
        for tick in range(20):
            batch = [
                ExecutionCompleted(
                    execution_id=f"burst-{tick}-{i}",
                    prompt_id="support-reply",
                    variant="concise-v3",
                    model="simulated/x",
                    provider="simulated",
                    latency_ms=12.0,
                )
                for i in range(50)
            ]
            await bus.publish_many(batch)
            await pilot.pause(0.1)
        await until(pilot, lambda: app.state.events_seen >= 48 + 1000, timeout=10)
        await pilot.press("4")  # still responsive: the live tab shows the newest calls
        feed = screen.query_one("#feed", DataTable)
        await until(
            pilot, lambda: feed.row_count == 60 and str(feed.get_row_at(0)[1]) == "concise-v3"
        )
        elapsed = time.monotonic() - started
        # The timer (4 Hz) is the only path to a redraw: 1,000 events, a handful of draws.
        assert draws <= elapsed * 4 + 2, (draws, elapsed)


async def test_works_at_80x24() -> None:
    _, app = await loaded_app()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await until(pilot, lambda: prompts_table(app).row_count == 3)
        text = screen_text(app)
        assert "support-reply" in text and "r Roll back" in text and "● live" in text
        await open_support_reply(pilot, app)
        text = screen_text(app)
        assert "empathetic-v2" in text and "p Promote" in text and "1 Trends" in text
        assert "Reward per minute" in text


async def test_the_template_tab_steps_through_versions() -> None:
    bus, app = await loaded_app()
    (first,) = [
        e
        for e in sample.history()
        if isinstance(e, VariantRegistered) and e.variant == "concise-v3"
    ]
    await bus.publish(
        first.model_copy(
            update={
                "event_id": "v2-of-concise",
                "version": "second-version-hash",
                "template": "Newer wording {{ message }}",
            }
        )
    )
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        screen = await open_support_reply(pilot, app)
        await pilot.press("down", "6")  # concise-v3, template tab
        await until(pilot, lambda: "version 2 of 2" in screen_text(app))
        assert "Newer wording" in screen_text(app)
        await pilot.press("[")
        await until(pilot, lambda: "version 1 of 2" in screen_text(app))
        text = screen_text(app)
        assert "not the current one" in text and "Newer wording" not in text
        assert first.template.split("\n")[0][:30] in text
        await pilot.press("[")  # already the oldest
        await pilot.press("]")
        await until(pilot, lambda: "version 2 of 2" in screen_text(app))
        assert isinstance(screen, DetailScreen)
