"""The durable outbox: segments on disk, resumable drains, crash leftovers."""

from __future__ import annotations

from pathlib import Path

from promptlab.events.models import FeedbackReceived, encode
from promptlab.events.outbox import Outbox


def feedback(n: int) -> FeedbackReceived:
    return FeedbackReceived(execution_id=f"e{n}", name="thumbs_up", value=bool(n % 2))


def drain_all(outbox: Outbox, batch: int = 500) -> list[FeedbackReceived]:
    out = []
    while (b := outbox.next_batch(batch)) is not None:
        out += b.events
        outbox.commit(b)
    return out  # type: ignore[return-value]


def test_events_come_back_byte_for_byte(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    events = [feedback(i) for i in range(5)]
    outbox.append(events)
    assert outbox.pending == 5
    back = drain_all(outbox)
    assert [encode(e) for e in back] == [encode(e) for e in events]
    assert outbox.pending == 0 and list(tmp_path.iterdir()) == []


def test_segments_rotate_and_drain_oldest_first(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path, segment_max_events=10)
    events = [feedback(i) for i in range(25)]
    for i in range(0, 25, 5):
        outbox.append(events[i : i + 5])
    assert len(outbox.segments()) == 2  # 2 full, 1 still open
    assert [e.event_id for e in drain_all(outbox, batch=4)] == [e.event_id for e in events]


def test_interrupted_drain_resumes_after_the_acked_lines(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    events = [feedback(i) for i in range(10)]
    outbox.append(events)
    first = outbox.next_batch(4)
    assert first is not None and not first.last
    outbox.commit(first)
    outbox.close()  # the process stops here

    reopened = Outbox(tmp_path)
    assert reopened.pending == 6
    assert [e.event_id for e in drain_all(reopened)] == [e.event_id for e in events[4:]]


def test_abandoned_open_segment_of_a_dead_process_is_recovered(tmp_path: Path) -> None:
    events = [feedback(i) for i in range(3)]
    dead_pid = 2**22 + 4321  # above the default pid_max: no such process
    lines = b"".join(encode(e) + b"\n" for e in events)
    (tmp_path / f"{1:020d}-{dead_pid}.jsonl.open").write_bytes(
        lines + b'{"type": "feedback.rec'
    )  # torn
    outbox = Outbox(tmp_path)
    assert [e.event_id for e in drain_all(outbox)] == [e.event_id for e in events]
    assert list(tmp_path.iterdir()) == []


def test_a_segment_being_drained_is_locked(tmp_path: Path) -> None:
    one = Outbox(tmp_path)
    one.append([feedback(1)])
    one.rotate()
    batch = one.next_batch()
    assert batch is not None
    other = Outbox(tmp_path)
    assert other.next_batch() is None  # locked by `one`
    one.commit(batch)
    assert other.next_batch() is None and one.pending == 0
