"""Saying that NATS is unreachable once per outage, with its real cause.

A sidecar has several loops that need the bus (KV watches, the connect loop, the
learner's start). While NATS is down each of them fails every second; logging each
failure buried the one useful line. The loop that owns the connection reports the
outage and the recovery (:class:`OutageLog`); the others stay quiet while the bus is
down and warn once per streak of their own failures (:class:`RetryLog`).
"""

from __future__ import annotations

import errno
import logging
import socket
import time

from promptlab.events.bus import BusUnavailable, EventBus


def connect_cause(exc: BaseException, timeout_s: float) -> str:
    """Why a connection attempt failed, in words (not ``TimeoutError()``)."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is nats-server running on that port?)"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host ({exc.strerror or exc})"
    if isinstance(exc, OSError) and exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return f"network unreachable ({exc.strerror})"
    if isinstance(exc, TimeoutError) or type(exc).__name__ == "TimeoutError":
        return f"no answer within {timeout_s:g}s"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text


class OutageLog:
    """One WARNING when a connection loop starts failing and one when it succeeds again.

    ``every_s`` is the true interval between attempts (start to start), said in the line.
    """

    def __init__(self, logger: logging.Logger, what: str, every_s: float) -> None:
        self.logger = logger
        self.what = what
        self.every_s = every_s
        self.down_since: float | None = None

    def failed(self, cause: object, consequence: str = "") -> None:
        """An attempt failed; logged only when it starts an outage."""
        if self.down_since is not None:
            self.logger.debug("%s: still unreachable: %s", self.what, cause)
            return
        self.down_since = time.monotonic()
        tail = f"; {consequence}" if consequence else ""
        self.logger.warning("%s%s; retrying every %gs", cause, tail, self.every_s)

    def recovered(self, what_now: str = "") -> None:
        """An attempt succeeded; logged only when it ends an outage."""
        if self.down_since is None:
            return
        down = time.monotonic() - self.down_since
        self.down_since = None
        tail = f"; {what_now}" if what_now else ""
        self.logger.warning("%s answers again after %.0fs%s", self.what, down, tail)


class RetryLog:
    """How a loop that retries against the bus (a KV watch) reports its failures.

    Quiet (DEBUG) while the bus itself is down: its owner reports that outage once.
    Otherwise one WARNING per streak of failures, and an INFO when it works again.
    """

    def __init__(self, logger: logging.Logger, what: str, every_s: float) -> None:
        self.logger = logger
        self.what = what
        self.every_s = every_s
        self.failing = False

    def failed(self, bus: EventBus | None, exc: BaseException) -> None:
        if isinstance(exc, BusUnavailable) or (bus is not None and not bus.connected):
            self.logger.debug("%s waits for the bus: %s", self.what, exc)
            return
        if self.failing:
            self.logger.debug("%s still failing: %s", self.what, exc)
            return
        self.failing = True
        self.logger.warning(
            "%s interrupted (%s); retrying every %gs", self.what, exc or type(exc).__name__,
            self.every_s,
        )  # fmt: skip

    def working(self) -> None:
        """The loop did its work (an entry came in): the next failure is news again."""
        if self.failing:
            self.failing = False
            self.logger.info("%s works again", self.what)
