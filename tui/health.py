"""Is the picture on screen current? The status line's answer, as a pure function.

Two things can make the TUI show an old picture: the link to NATS (down, reconnecting,
never up) and the learner (it writes the stats snapshots; when it stops, traffic keeps
flowing but the numbers freeze). Both are judged here from facts the feed records, with
``now`` passed in, so tests and screenshots can fix the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from promptlab.tui.state import LabState

Level = Literal["ok", "warn", "error"]


@dataclass(frozen=True, slots=True)
class Health:
    level: Level
    text: str


def assess(
    state: LabState,
    *,
    now: float,
    started_at: float,
    connected: bool,
    ever_connected: bool,
    connect_error: str | None,
    stale_after_s: float,
) -> Health:
    """The status line for this moment.

    * never connected: "cannot connect" with the reason (retries go on in the background);
    * connected before, not now: "reconnecting…";
    * no stats snapshot at all for ``stale_after_s`` since start, or none for
      ``stale_after_s`` while executions and feedback keep arriving: "learner offline".
      A quiet system with an old snapshot is not offline: the learner only writes when
      something changed.
    """
    if not connected:
        if not ever_connected:
            reason = f": {connect_error}" if connect_error else ""
            return Health("error", f"cannot connect to NATS{reason} (retrying)")
        return Health("warn", "reconnecting… (showing the last data received)")
    last = state.last_snapshot_at
    if last is None:
        if now - started_at >= stale_after_s:
            return Health("warn", "learner offline: no stats snapshot received")
        return Health("ok", "connected, waiting for stats")
    traffic = state.last_traffic_at
    if traffic is not None and traffic > last and now - last >= stale_after_s:
        return Health(
            "warn", f"learner offline: no stats for {now - last:.0f}s while traffic flows"
        )
    return _learner(state, now, stale_after_s) or Health("ok", "live")


def _learner(state: LabState, now: float, stale_after_s: float) -> Health | None:
    """The lease: which learner is active (it refreshes its status every few seconds)."""
    status, seen = state.learner, state.learner_seen_at
    if status is None or seen is None:
        return None
    if status.state == "stopped":
        return Health("warn", f"live · no active learner ({status.host} pid {status.pid} stopped)")
    if now - seen >= stale_after_s:
        return Health(
            "warn",
            f"live · learner {status.host} pid {status.pid} silent for {now - seen:.0f}s "
            "(a standby takes over once its lease is free)",
        )
    return Health("ok", f"live · learner active: {status.host} pid {status.pid}")
