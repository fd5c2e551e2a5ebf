"""nats-py's errors, translated at the JetStream boundary.

Every module that talks to nats-py (:mod:`events.jetstream`, :mod:`events.jetstream_kv`,
:mod:`events.jetstream_consumers`) wraps its calls in :func:`translate`, so no nats-py
error leaves them: an outage becomes :class:`BusUnavailable` (retry later), anything
else :class:`BusError`.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import nats.errors
import nats.js.errors

from promptlab.events.bus import BusError, BusUnavailable

UNAVAILABLE: tuple[type[BaseException], ...] = (
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionDrainingError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.NoServersError,
    nats.errors.StaleConnectionError,
    nats.errors.NoRespondersError,
    nats.errors.FlushTimeoutError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.TooManyStalledMsgsError,
    TimeoutError,  # also nats.errors.TimeoutError
    OSError,
)
"""The nats-py errors that mean "NATS is not answering now" rather than "this is wrong"."""


@contextlib.contextmanager
def translate(action: str) -> Iterator[None]:
    """Turn nats-py errors into BusUnavailable / BusError at the boundary."""
    try:
        yield
    except BusError:
        raise
    except UNAVAILABLE as exc:
        raise BusUnavailable(f"{action}: NATS unavailable ({type(exc).__name__}: {exc})") from exc
    except (nats.errors.Error, nats.js.errors.Error) as exc:
        raise BusError(f"{action}: {type(exc).__name__}: {exc}") from exc


@functools.cache
def refused_login(exc: BaseException | None) -> bool:
    """Whether a connection error is the server refusing our credentials."""
    return exc is not None and (
        isinstance(exc, nats.errors.AuthorizationError) or "authorization" in str(exc).lower()
    )
