"""Start ``promptlab serve`` in a child process and wait until it serves.

The one way tests and benchmarks run a real sidecar (``tests/support`` is on pytest's
``pythonpath``; the bench imports it as ``tests.support.serving``):

* :func:`write_config` -- a ``promptlab.toml`` that keeps NATS data, the outbox, the
  prompts and the database under one directory;
* :class:`Serve` -- the child: waits for the ready line (``promptlab serving on
  http://HOST:PORT/v1``, whatever banner comes before it) and for ``/readyz`` 200, with
  deadlines; keeps reading stdout so that a chatty child (``-v``) never blocks on a full
  pipe; ``terminate()`` (SIGTERM, exit code) and ``kill()`` (SIGKILL, and the embedded
  nats-server it can no longer stop).
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
READY = re.compile(r"promptlab serving on (http://[^/\s]+)/v1(?: \(nats: (nats://[^,)\s]+))?")
"""The line ``serve`` prints once it accepts calls; group 1 is the base URL."""

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


GREET_PROMPT = """
id = "greet"
[[variables]]
name = "name"
type = "string"
required = true
[[variants]]
name = "hello"
model = "simulated/alpha"
template = "Say hello to {{ name }}"
"""
"""A one-variant prompt on the simulated provider, for tests of the serve process."""

GREET_CALL = {
    "model": "promptlab/greet",
    "messages": [],
    "promptlab": {"variables": {"name": "Ada"}},
}
"""A routed call of :data:`GREET_PROMPT`."""


def child_pids(pid: int, marker: bytes = b"") -> list[int]:
    """The child processes of ``pid`` whose command line holds ``marker`` (Linux /proc)."""
    found = []
    with contextlib.suppress(OSError):
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            with contextlib.suppress(OSError):
                if marker in Path(f"/proc/{child}/cmdline").read_bytes():
                    found.append(int(child))
    return found


def learner_children(pid: int) -> list[int]:
    """The learner child processes of a ``serve`` process."""
    return child_pids(pid, b"promptlab.commands.learner_child")


def clean_env(**overrides: str) -> dict[str, str]:
    """This environment without any ``PROMPTLAB_*`` variable, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTLAB_")}
    env.update(overrides)
    return env


def write_config(
    directory: Path,
    prompts: Mapping[str, str] | None = None,
    *,
    nats_url: str = "embedded",
    storage_url: str | None = None,
    extra: str = "",
) -> Path:
    """``directory/promptlab.toml`` keeping all of serve's state in ``directory``.

    ``prompts`` maps file stems to prompt-file TOML, written to ``directory/prompts``;
    ``extra`` is appended TOML (providers, learner settings...).
    """
    directory.mkdir(parents=True, exist_ok=True)
    prompt_dir = directory / "prompts"
    prompt_dir.mkdir(exist_ok=True)
    for name, text in (prompts or {}).items():
        (prompt_dir / f"{name}.toml").write_text(text)
    storage = storage_url or f"sqlite+aiosqlite:///{directory}/promptlab.db"
    config = directory / "promptlab.toml"
    config.write_text(
        f'[nats]\nurl = "{nats_url}"\ndata_dir = "{directory}/nats"\n'
        f'outbox_dir = "{directory}/outbox"\n'
        f'[prompts]\ndir = "{prompt_dir}"\n'
        f'[storage]\nurl = "{storage}"\n' + extra
    )
    return config


class ServeFailed(RuntimeError):
    """``serve`` exited or did not become ready in time; the message holds its output."""


class Serve:
    """One ``promptlab serve`` child, ready when the constructor returns.

    ``config`` None runs ``serve`` without ``--config`` (it reads
    ``./config/promptlab.toml`` of ``cwd``, as a user's would). ``learner=False`` adds
    ``--no-learner``; ``args`` go after ``serve``; ``--port PORT`` is added unless
    ``port`` is None or ``args`` name a port; ``log`` receives stderr (else it is kept
    in memory, last lines only); ``ready_timeout`` bounds the wait for the ready line
    and ``/readyz``.
    """

    def __init__(
        self,
        config: Path | None,
        log: Path | None = None,
        *,
        learner: bool = True,
        port: int | None = 0,
        args: Iterable[str] = (),
        env: Mapping[str, str] | None = None,
        cwd: Path = ROOT,
        verbose: bool = False,
        ready_timeout: float = 60.0,
        wait_readyz: bool = True,
    ) -> None:
        self.config = config
        self.log_path = log
        args = list(args)
        command = [sys.executable, "-m", "promptlab", *(["-v"] if verbose else [])]
        if config is not None:
            command += ["--config", str(config)]
        command += ["serve", *args]
        if port is not None and "--port" not in args:
            command += ["--port", str(port)]
        if not learner:
            command.append("--no-learner")
        self.command = command
        self._log: IO[bytes] | None = open(log, "ab") if log is not None else None
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=self._log if self._log is not None else subprocess.PIPE,
            text=True,
            env=dict(env) if env is not None else clean_env(),
            cwd=cwd,
        )
        self.output: collections.deque[str] = collections.deque(maxlen=500)
        """stdout (and stderr without ``log``), newest last."""
        self._ready = threading.Event()
        self._match: re.Match[str] | None = None
        self.line_after_s = float("nan")
        """Seconds from exec to the ready line."""
        self._readers = [self._drain(self.proc.stdout, ready=True)]
        if self._log is None:
            self._readers.append(self._drain(self.proc.stderr, ready=False))
        self.url, self.nats_url = self._wait_ready(ready_timeout, wait_readyz)
        self.ready_after_s = time.monotonic() - self.started
        """Seconds from exec to ``/readyz`` 200 (to the ready line without ``wait_readyz``)."""

    # ------------------------------------------------------------------ start

    def _drain(self, stream: IO[str] | None, *, ready: bool) -> threading.Thread:
        def read() -> None:
            assert stream is not None
            with contextlib.suppress(ValueError, OSError):  # closed under us at the end
                for line in stream:
                    self.output.append(line.rstrip("\n"))
                    if ready and self._match is None and (match := READY.search(line)):
                        self.line_after_s = time.monotonic() - self.started
                        self._match = match
                        self._ready.set()
            self._ready.set()  # EOF: the child is gone

        thread = threading.Thread(target=read, daemon=True)
        thread.start()
        return thread

    def _wait_ready(self, timeout: float, wait_readyz: bool) -> tuple[str, str | None]:
        deadline = self.started + timeout
        if not self._ready.wait(timeout) or self._match is None:
            self.kill()
            raise ServeFailed(f"serve printed no ready line: {self.log_text()[-3000:]}")
        url, nats_url = self._match.group(1), self._match.group(2)
        while wait_readyz and not self._readyz(url):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise ServeFailed(f"{url}/readyz never answered 200: {self.log_text()[-3000:]}")
            time.sleep(0.005)
        return url, nats_url

    @staticmethod
    def _readyz(url: str) -> bool:
        try:
            with _NO_PROXY.open(url + "/readyz", timeout=2) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    # ------------------------------------------------------------------ use

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL, ``http://HOST:PORT/v1``."""
        return self.url + "/v1"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_text(self) -> str:
        """stderr from the log file when there is one, and what the child printed."""
        text = ""
        if self._log is not None and self.log_path is not None:
            with contextlib.suppress(ValueError):
                self._log.flush()
            text = self.log_path.read_text(errors="replace")
        return text + "\n".join(self.output)

    def post_json(self, path: str, body: Any, timeout: float = 10.0) -> Any:
        """POST ``body`` to ``url + path`` and return the decoded JSON answer."""
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with _NO_PROXY.open(request, timeout=timeout) as resp:
            return json.loads(resp.read())

    # ------------------------------------------------------------------ stop

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM, then the exit code; killed (and -9 returned) after ``timeout``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return -9
        finally:
            self._close()

    def kill(self) -> None:
        """SIGKILL ``serve`` and its learner process (a crash of the whole service), and
        stop the embedded nats-server the killed child cannot stop."""
        if self.proc.poll() is None:
            learners = learner_children(self.proc.pid)
            self.proc.kill()
            for pid in learners:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            self.proc.wait()
            self._stop_embedded_nats()
        self._close()

    def _stop_embedded_nats(self) -> None:
        state = self._nats_state_file()
        if state is not None and state.is_file():
            with contextlib.suppress(OSError, ValueError, KeyError):
                os.kill(int(json.loads(state.read_text())["pid"]), signal.SIGTERM)

    def _nats_state_file(self) -> Path | None:
        if self.config is None:
            return None
        match = re.search(r'data_dir = "([^"]+)"', self.config.read_text())
        return Path(match.group(1)) / "server.json" if match else None

    def _close(self) -> None:
        for reader in self._readers:  # let them see EOF before their streams close
            reader.join(timeout=2)
        if self._log is not None:
            with contextlib.suppress(Exception):
                self._log.close()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(Exception):
                    stream.close()

    def __enter__(self) -> Serve:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.terminate()
        else:
            self._close()


@contextlib.contextmanager
def serving(config: Path | None, **kwargs: Any) -> Iterator[Serve]:
    """:class:`Serve` as a context manager: SIGTERM (then SIGKILL) on the way out."""
    with Serve(config, **kwargs) as served:
        yield served
