"""The reject file: events that cannot be encoded, kept for a human instead of lost.

An event the publisher cannot serialise (a lone surrogate in a string that slipped past
the HTTP boundary, a bug in a model) can never reach the stream or the outbox, whose
lines are exactly the published bytes. Retrying it would stop every event behind it, so
it is set aside here, one JSON line per event, written with ``ensure_ascii`` (which
escapes what UTF-8 cannot carry), and publishing goes on.

Each line: ``{"rejected_at", "reason", "event_type", "event_id", "event"}``. The file is
``<outbox_dir>/rejected/<pid>.rejected`` (outside the outbox's segment glob, so it is
never drained). Nothing reads it back automatically: it is evidence for an operator.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from promptlab.events.models import BaseEvent, encode

log = logging.getLogger(__name__)

REJECT_DIR = "rejected"
REJECT_SUFFIX = ".rejected"


def unencodable(event: BaseEvent) -> Exception | None:
    """The error that encoding ``event`` raises, or None when it encodes."""
    try:
        encode(event)
    except Exception as exc:  # pydantic, UnicodeEncodeError, a model bug: all the same here
        return exc
    return None


def _best_effort_dump(event: BaseEvent) -> Any:
    try:
        return event.model_dump(mode="python", exclude_none=True)
    except Exception:
        return repr(event)


class RejectFile:
    """Append-only JSON lines of events that could not be encoded, with a counter."""

    def __init__(self, outbox_dir: Path | str) -> None:
        self.path = Path(outbox_dir) / REJECT_DIR / f"{os.getpid()}{REJECT_SUFFIX}"
        self.count = 0
        """Events set aside by this process."""

    def add(self, event: BaseEvent, reason: BaseException) -> None:
        """Keep ``event`` with the reason; never raises (a failed write is logged)."""
        self.count += 1
        event_type = getattr(event, "type", type(event).__name__)
        # The log line names the event, never its content (which may carry user data).
        log.error(
            "event %s %s cannot be encoded (%s); kept in %s and not published",
            event_type,
            event.event_id,
            type(reason).__name__,
            self.path,
        )
        line = {
            "rejected_at": time.time(),
            "reason": f"{type(reason).__name__}: {reason}",
            "event_type": event_type,
            "event_id": event.event_id,
            "event": _best_effort_dump(event),
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="ascii") as fh:
                fh.write(json.dumps(line, ensure_ascii=True, default=repr) + "\n")
        except (OSError, ValueError) as exc:
            log.error("reject file %s not written: %s", self.path, exc)


def read_rejects(outbox_dir: Path | str) -> list[dict[str, Any]]:
    """Every rejected event under ``outbox_dir`` (all processes), oldest file first."""
    out: list[dict[str, Any]] = []
    directory = Path(outbox_dir) / REJECT_DIR
    for path in sorted(directory.glob(f"*{REJECT_SUFFIX}")):
        for raw in path.read_text(encoding="ascii").splitlines():
            if raw.strip():
                out.append(json.loads(raw))
    return out
