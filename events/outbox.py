"""The durable outbox: events that could not reach NATS wait here, on disk.

Layout of ``outbox_dir`` (one JSON event per line, exactly the bytes that would have been
published, so the ``event_id`` — the JetStream ``Nats-Msg-Id`` — never changes):

* ``<time_ns>-<pid>.jsonl.open`` — the segment this process is appending to;
* ``<time_ns>-<pid>.jsonl`` — closed segments, drained oldest first;
* ``<segment>.acked`` — how many lines of a closed segment NATS has acknowledged, so a
  drain interrupted half-way resumes after them instead of re-sending them.

A segment is deleted only after every line is acknowledged. An ``.open`` segment left by
a process that died is closed (renamed) by the next process that opens the outbox. A
drained segment is locked with ``flock``, so two processes sharing a directory never drain
the same one at once. A torn last line (crash in mid-write) is skipped with a warning.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from io import BufferedWriter
from pathlib import Path
from typing import IO

from promptlab.events.embedded import pid_alive
from promptlab.events.models import BaseEvent, EventDecodeError, decode, encode

log = logging.getLogger(__name__)

OPEN_SUFFIX = ".jsonl.open"
CLOSED_SUFFIX = ".jsonl"
ACKED_SUFFIX = ".acked"


def _pid_of(path: Path) -> int | None:
    try:
        return int(path.name.split(".", 1)[0].rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return None


def _fsync_dir(directory: Path) -> None:
    # A rename is durable only once its directory is synced.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@dataclass(slots=True)
class OutboxBatch:
    """Events read from one segment, to publish and then :meth:`Outbox.commit`."""

    segment: Path
    end_line: int
    """Line count of the segment that is acknowledged once this batch is committed."""
    events: list[BaseEvent]
    last: bool
    """True when committing this batch finishes the segment."""


class Outbox:
    """Append-only JSON-lines segments with an fsync per batch. Not thread-safe: use it
    from one event loop."""

    def __init__(self, directory: Path | str, *, segment_max_events: int = 1000) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.segment_max_events = segment_max_events
        self._active: Path | None = None
        self._active_fh: BufferedWriter | None = None
        self._active_count = 0
        self._unsynced = False
        self._locked: tuple[Path, IO[bytes]] | None = None
        self._recover_abandoned()
        self.pending = self._count_pending()
        """Events in the outbox that NATS has not acknowledged yet."""

    # ------------------------------------------------------------------ writing

    def append(self, events: Sequence[BaseEvent], *, sync: bool = True) -> None:
        """Write ``events`` to the active segment; ``sync`` fsyncs before returning."""
        if not events:
            return
        fh = self._active_file()
        fh.write(b"".join(encode(e) + b"\n" for e in events))
        self._active_count += len(events)
        self.pending += len(events)
        self._unsynced = True
        if sync:
            self.sync()
        if self._active_count >= self.segment_max_events:
            self.rotate()

    def sync(self) -> None:
        """Flush and fsync what :meth:`append` wrote without ``sync``."""
        if self._active_fh is not None and self._unsynced:
            self._active_fh.flush()
            os.fsync(self._active_fh.fileno())
        self._unsynced = False

    def rotate(self) -> None:
        """Close the active segment so it can be drained (no-op when there is none)."""
        if self._active_fh is None or self._active is None:
            return
        self.sync()
        self._active_fh.close()
        self._active.rename(self._active.with_name(self._active.name[: -len(".open")]))
        _fsync_dir(self.directory)
        self._active, self._active_fh, self._active_count = None, None, 0

    def close(self) -> None:
        """Sync and close the active segment, and release any drain lock."""
        self.rotate()
        self.release()

    def _active_file(self) -> BufferedWriter:
        if self._active_fh is None:
            # time_ns keeps segments in write order; the pid tells whose .open file it is.
            self._active = self.directory / f"{time.time_ns():020d}-{os.getpid()}{OPEN_SUFFIX}"
            self._active_fh = open(self._active, "ab")
            self._active_count = 0
        return self._active_fh

    # ------------------------------------------------------------------ draining

    def segments(self) -> list[Path]:
        """Closed segments, oldest first."""
        return sorted(self.directory.glob(f"*{CLOSED_SUFFIX}"))

    def next_batch(self, max_events: int = 500) -> OutboxBatch | None:
        """The oldest unacknowledged events (at most ``max_events``), or None when empty.

        Closes the active segment first when nothing else is waiting, so a drain always
        catches up. The segment stays locked until :meth:`commit` or :meth:`release`.
        """
        if not self.segments() and self._active_count:
            self.rotate()
        for segment in self.segments():
            if not self._lock(segment):
                continue
            try:
                lines = segment.read_bytes().splitlines()
            except FileNotFoundError:  # another process finished it meanwhile
                self.release()
                continue
            done = self._acked(segment)
            chunk = lines[done : done + max_events]
            events = []
            for n, line in enumerate(chunk, start=done + 1):
                try:
                    events.append(decode(line))
                except EventDecodeError as exc:
                    log.warning(
                        "outbox: skipping unreadable line %d of %s: %s", n, segment.name, exc
                    )
            end = done + len(chunk)
            return OutboxBatch(segment, end, events, last=end >= len(lines))
        return None

    def commit(self, batch: OutboxBatch) -> None:
        """Record that NATS acknowledged ``batch``; delete the segment when it is done."""
        done_before = self._acked(batch.segment)
        if batch.last:
            batch.segment.unlink(missing_ok=True)
            self._acked_path(batch.segment).unlink(missing_ok=True)
            self.release()
        else:
            tmp = self._acked_path(batch.segment).with_suffix(".tmp")
            tmp.write_text(str(batch.end_line))
            tmp.replace(self._acked_path(batch.segment))
        self.pending = max(0, self.pending - (batch.end_line - done_before))

    def release(self) -> None:
        """Give up the lock on the segment being drained."""
        if self._locked is not None:
            _, fh = self._locked
            self._locked = None
            with contextlib.suppress(OSError):
                fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()

    def _lock(self, segment: Path) -> bool:
        if self._locked is not None:
            if self._locked[0] == segment:
                return True
            self.release()
        try:
            fh = open(segment, "rb")
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            return False
        self._locked = (segment, fh)
        return True

    # ------------------------------------------------------------------ bookkeeping

    @staticmethod
    def _acked_path(segment: Path) -> Path:
        return segment.with_name(segment.name + ACKED_SUFFIX)

    def _acked(self, segment: Path) -> int:
        try:
            return int(self._acked_path(segment).read_text() or 0)
        except (OSError, ValueError):
            return 0

    def _recover_abandoned(self) -> None:
        for path in self.directory.glob(f"*{OPEN_SUFFIX}"):
            pid = _pid_of(path)
            if pid is None or (pid != os.getpid() and not pid_alive(pid)):
                with contextlib.suppress(OSError):
                    path.rename(path.with_name(path.name[: -len(".open")]))
        for acked in self.directory.glob(f"*{CLOSED_SUFFIX}{ACKED_SUFFIX}"):
            if not acked.with_name(acked.name[: -len(ACKED_SUFFIX)]).exists():
                acked.unlink(missing_ok=True)

    def _count_pending(self) -> int:
        total = 0
        for segment in self.segments():
            with contextlib.suppress(OSError):
                total += max(0, len(segment.read_bytes().splitlines()) - self._acked(segment))
        return total
