"""MemoryBus specifics the contract suite cannot show (clock, outage switch, matching)."""

from __future__ import annotations

import pytest

from promptlab.events.bus import BusUnavailable
from promptlab.events.memory import MemoryBus, subject_matches
from promptlab.events.models import FeedbackReceived


def feedback() -> FeedbackReceived:
    return FeedbackReceived(execution_id="e", name="n", value=True)


async def test_duplicate_window_expires() -> None:
    now = [0.0]
    bus = MemoryBus(duplicate_window_s=10, clock=lambda: now[0])
    event = feedback()
    assert (await bus.publish(event)).sequence == 1
    now[0] = 9.9
    assert (await bus.publish(event)).duplicate
    now[0] = 10.1  # like JetStream: outside the window the id is new again
    assert (await bus.publish(event)).sequence == 2


async def test_outage_switch() -> None:
    bus = MemoryBus()
    bus.set_available(False)
    assert not bus.connected
    with pytest.raises(BusUnavailable):
        await bus.publish(feedback())
    bus.set_available(True)
    assert (await bus.publish(feedback())).sequence == 1


async def test_closed_then_started_again() -> None:
    bus = MemoryBus()
    await bus.publish(feedback())
    await bus.close()
    await bus.start()
    assert bus.connected and await bus.last_sequence() == 1


@pytest.mark.parametrize(
    ("pattern", "subject", "matches"),
    [
        ("promptlab.>", "promptlab.execution.completed", True),
        ("promptlab.>", "promptlab", False),
        ("promptlab.*", "promptlab.variant", True),
        ("promptlab.*", "promptlab.execution.completed", False),
        ("promptlab.*.completed", "promptlab.execution.completed", True),
        ("promptlab.decision", "promptlab.decision", True),
        ("promptlab.decision", "promptlab.decisions", False),
    ],
)
def test_subject_matching(pattern: str, subject: str, matches: bool) -> None:
    assert subject_matches(pattern, subject) is matches
