"""The TUI against a real nats-server: recorded events in, commands out, restarts survived."""

from __future__ import annotations

import asyncio

from textual.widgets import DataTable
from tui_helpers import FakeClock, screen_text, toasts, until

from promptlab.events import Bucket, CommandRejected, PromoteCommand
from promptlab.events.embedded import NatsServerProcess
from promptlab.events.jetstream import JetStreamBus
from promptlab.tui import make_tui, sample
from promptlab.tui.screens.confirm import ConfirmScreen
from promptlab.tui.screens.detail import DetailScreen


async def test_watch_promote_and_refusal_over_jetstream(jetstream_bus: JetStreamBus) -> None:
    bus = jetstream_bus
    await sample.load(bus)
    app = make_tui(bus, clock=FakeClock())
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        table = lambda: app.screen.query_one("#prompts", DataTable)  # noqa: E731
        await until(pilot, lambda: table().row_count == 3)
        assert str(table().get_row("support-reply")[1]) == "empathetic-v2"
        await pilot.press("down", "enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        await pilot.press("4")  # history read from the stream fills the live feed
        await until(pilot, lambda: app.screen.query_one("#feed", DataTable).row_count == 24)

        await pilot.press("down", "p")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: any(t.startswith("Command sent") for t in toasts(app)))
        sent = [e async for _, e, _ in bus.read(1) if isinstance(e, PromoteCommand)]
        assert [(c.prompt_id, c.variant) for c in sent] == [("support-reply", "concise-v3")]

        await bus.publish(
            CommandRejected(
                command_id=sent[0].event_id,
                prompt_id="support-reply",
                reason="exploration is paused",
            )
        )
        await until(
            pilot, lambda: any("was refused: exploration is paused" in t for t in toasts(app))
        )

        # A new snapshot from the learner shows up without any key press.
        stats = sample.stats_snapshots()[0]
        promoted = stats.model_copy(update={"version": stats.version + 1, "champion": "concise-v3"})
        await bus.kv_put(str(Bucket.STATS), promoted.prompt_id, promoted.encode())
        await until(pilot, lambda: "champion concise-v3" in screen_text(app))


async def test_survives_a_nats_restart(nats_server: NatsServerProcess) -> None:
    bus = JetStreamBus(url=nats_server.url)
    await bus.start()
    try:
        await sample.load(bus)
        app = make_tui(bus, clock=FakeClock())
        app.feed.retry_s = 0.1
        async with app.run_test(size=(100, 30)) as pilot:
            table = lambda: app.screen.query_one("#prompts", DataTable)  # noqa: E731
            await until(pilot, lambda: table().row_count == 3 and "● live" in screen_text(app))

            await asyncio.to_thread(nats_server.stop)
            await until(pilot, lambda: "reconnecting" in screen_text(app))
            await asyncio.to_thread(nats_server.start)
            await until(pilot, lambda: "● live" in screen_text(app), timeout=15)

            stats = sample.stats_snapshots()[1]
            moved = stats.model_copy(
                update={"version": stats.version + 1, "champion": "tldr-first"}
            )
            await bus.kv_put(str(Bucket.STATS), moved.prompt_id, moved.encode())
            await until(
                pilot, lambda: str(table().get_row("ticket-summary")[1]) == "tldr-first", timeout=15
            )
    finally:
        await bus.close()
