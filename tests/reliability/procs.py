"""Real processes for the reliability cases: ``promptlab serve`` (sidecar, learner or both)
in front of a fake upstream, on a nats-server this test owns, and the books to check.

* :func:`write_config` — a ``promptlab.toml`` keeping everything in one directory, with
  the ``fake`` provider pointing at a :class:`FakeUpstream` and its key read from
  :data:`KEY_ENV` (set to :data:`CANARY`, which must never appear anywhere but there).
* :class:`Serve` — one ``promptlab serve`` child: ready line parsed, stderr kept in a log
  file, ``terminate()`` (SIGTERM, exit code) and ``kill()`` (SIGKILL).
* :func:`drive` — calls at a given concurrency, each retried by nobody: the outcome of
  every call (status, execution id) is what the case asserts on.
* :func:`stream_books` — ExecutionCompleted in the stream, by execution id.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[2]
CANARY = "sk-canary-7f3a9c1e5b2d4f6081a3c5e7"
"""The provider key of every reliability case: it may reach the fake upstream only."""
KEY_ENV = "PROMPTLAB_RELIABILITY_KEY"
READY = re.compile(r"promptlab serving on (http://[\d.]+:\d+)/v1")

PROMPT = """
id = "greet"
description = "reliability cases"
[reward]
feedback = "thumbs_up"
[[variables]]
name = "name"
type = "string"
required = true
[[variants]]
name = "a"
model = "fake/model-a"
template = "Say hello to {{ name }}"
champion = true
[[variants]]
name = "b"
model = "fake/model-b"
template = "Greet {{ name }}"
"""


def write_config(
    directory: Path,
    *,
    nats_url: str,
    upstream_base: str,
    storage_url: str | None = None,
    extra: str = "",
) -> Path:
    """A config file for ``serve`` under ``directory``; ``extra`` is appended TOML."""
    directory.mkdir(parents=True, exist_ok=True)
    prompts = directory / "prompts"
    prompts.mkdir(exist_ok=True)
    (prompts / "greet.toml").write_text(PROMPT)
    storage = storage_url or f"sqlite+aiosqlite:///{directory}/promptlab.db"
    config = directory / "promptlab.toml"
    config.write_text(
        f'[nats]\nurl = "{nats_url}"\ndata_dir = "{directory}/nats"\n'
        f'outbox_dir = "{directory}/outbox"\n'
        f'[prompts]\ndir = "{prompts}"\n'
        f'[storage]\nurl = "{storage}"\n'
        f'[providers.fake]\nkind = "openai"\napi_base = "{upstream_base}"\n'
        f'api_key_env = "{KEY_ENV}"\nmax_retries = 2\nretry_backoff_s = 0.01\n'
        f"retry_backoff_max_s = 0.05\n" + extra
    )
    return config


def clean_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTLAB_")}
    env[KEY_ENV] = CANARY
    env.update(overrides)
    return env


class Serve:
    """One ``promptlab serve`` child process."""

    def __init__(
        self,
        config: Path,
        log: Path,
        *,
        learner: bool = False,
        args: Iterable[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.config = config
        self.log_path = log
        command = [sys.executable, "-m", "promptlab", "-v", "--config", str(config), "serve"]
        command += ["--port", "0", *args]
        if not learner:
            command.append("--no-learner")
        self._log = open(log, "ab")
        self.ready_line = ""
        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=env or clean_env(),
            cwd=REPO,
        )
        self.url = self._wait_ready(60.0)

    def _wait_ready(self, timeout: float) -> str:
        lines: list[str] = []
        done = threading.Event()

        def read() -> None:
            assert self.proc.stdout is not None
            lines.append(self.proc.stdout.readline())
            done.set()

        threading.Thread(target=read, daemon=True).start()
        if not done.wait(timeout) or not (match := READY.search(lines[0])):
            log = self.log_text()[-3000:]  # before kill() closes the log file
            self.kill()
            raise RuntimeError(f"serve not ready: {lines!r}\n{log}")
        self.ready_line = lines[0]
        return match.group(1)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_text(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM, then the exit code (killed after ``timeout``)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return -9
        finally:
            self._close_files()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_files()

    def _close_files(self) -> None:
        with contextlib.suppress(Exception):
            self._log.close()
        if self.proc.stdout is not None:
            with contextlib.suppress(Exception):
                self.proc.stdout.close()


class Stack:
    """nats-server + fake upstream + one ``promptlab serve`` sidecar (no learner)."""

    def __init__(self, tmp_path: Path, nats: Any, upstream: Any, serve: Serve) -> None:
        self.tmp_path = tmp_path
        self.nats = nats
        self.upstream = upstream
        self.serve = serve

    @property
    def url(self) -> str:
        return self.serve.url

    @property
    def outbox_dir(self) -> Path:
        return self.tmp_path / "sidecar" / "outbox"


@dataclass
class Outcome:
    """What the client saw of a run of calls."""

    statuses: Counter[int] = field(default_factory=Counter)
    execution_ids: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def answered(self) -> int:
        return self.statuses[200]

    @property
    def total(self) -> int:
        return sum(self.statuses.values()) + len(self.failures)


def call_body(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "model": "promptlab/greet",
        "messages": [],
        "promptlab": {"variables": {"name": f"user{n}"}, "subject": f"s{n % 50}"},
        **extra,
    }


async def drive(
    urls: list[str],
    count: int,
    *,
    concurrency: int = 8,
    timeout: float = 30.0,
    outcome: Outcome | None = None,
    offset: int = 0,
) -> Outcome:
    """``count`` routed calls spread over ``urls``, ``concurrency`` at a time."""
    outcome = outcome if outcome is not None else Outcome()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(offset, offset + count):
        queue.put_nowait(n)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(timeout=client_timeout) as session:

        async def worker() -> None:
            while not queue.empty():
                n = queue.get_nowait()
                url = urls[n % len(urls)] + "/v1/chat/completions"
                try:
                    async with session.post(url, json=call_body(n)) as resp:
                        data = await resp.json(content_type=None)
                        outcome.statuses[resp.status] += 1
                        if resp.status == 200:
                            outcome.execution_ids.append(data["id"])
                except (aiohttp.ClientError, TimeoutError) as exc:
                    outcome.failures.append(f"{type(exc).__name__}: {exc}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcome


async def stream_events(nats_url: str) -> list[Any]:
    """Every event in the stream, in order."""
    from promptlab.events.jetstream import JetStreamBus

    bus = JetStreamBus(url=nats_url)
    await bus.start()
    try:
        return [event async for _, event, _ in bus.read(1) if event is not None]
    finally:
        await bus.close()


async def stream_books(nats_url: str) -> Counter[str]:
    """How many times each execution id appears in the stream's ExecutionCompleted."""
    from promptlab.events.models import ExecutionCompleted

    seen: Counter[str] = Counter()
    for event in await stream_events(nats_url):
        if isinstance(event, ExecutionCompleted):
            seen[event.execution_id] += 1
    return seen


async def wait_books(nats_url: str, ids: list[str], timeout: float = 30.0) -> Counter[str]:
    """The stream's books once every id in ``ids`` is there (or the deadline passed)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    wanted = set(ids)
    while True:
        books = await stream_books(nats_url)
        if wanted <= set(books) or loop.time() > deadline:
            return books
        await asyncio.sleep(0.1)


def promptlab_cli(
    config: Path, *args: str, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run ``promptlab --config CONFIG ARGS...`` and return the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "promptlab", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=REPO,
        timeout=timeout,
    )


def stats_total(config: Path) -> int:
    """Executions the learner's database counts for the ``greet`` prompt."""
    done = promptlab_cli(config, "stats", "--json", "--prompt", "greet")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout or "[]")
    prompts = data.get("prompts", []) if isinstance(data, dict) else data
    return sum(v["executions"] for p in prompts for v in p["variants"])


@dataclass
class Reply:
    status: int
    content_type: str
    headers: dict[str, str]
    body: Any
    raw: bytes

    @property
    def openai_error(self) -> bool:
        """True when this is an OpenAI-shaped JSON error."""
        return (
            self.content_type == "application/json"
            and isinstance(self.body, dict)
            and isinstance(self.body.get("error"), dict)
            and isinstance(self.body["error"].get("message"), str)
        )


async def http(
    method: str,
    url: str,
    *,
    json_body: Any = None,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Reply:
    """One request on a fresh connection; the reply, parsed when it is JSON."""
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=timeout), auto_decompress=False
    ) as session:
        kwargs: dict[str, Any] = {"headers": headers or {}}
        if json_body is not None:
            kwargs["json"] = json_body
        elif data is not None:
            kwargs["data"] = io.BytesIO(data) if len(data) > 1 << 20 else data
        async with session.request(method, url, **kwargs) as resp:
            raw = await resp.read()
            body: Any = None
            with contextlib.suppress(ValueError):
                body = json.loads(raw)
            return Reply(resp.status, resp.content_type, dict(resp.headers), body, raw)


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def when(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    """Return once ``predicate()`` holds (poll with a deadline)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def paced(
    urls: list[str],
    count: int,
    outcome: Outcome,
    *,
    concurrency: int = 4,
    pause: float = 0.01,
    stop: asyncio.Event | None = None,
) -> Outcome:
    """``count`` calls (or calls until ``stop`` is set), each worker pausing ``pause`` s
    between calls: a steady trickle of traffic while a case breaks something."""
    per_worker = count // concurrency if stop is None else 1 << 40

    async def worker(w: int) -> None:
        for i in range(per_worker):
            if stop is not None and stop.is_set():
                return
            await drive(urls, 1, concurrency=1, outcome=outcome, offset=w * per_worker + i)
            await asyncio.sleep(pause)

    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return outcome


def exactly_once(books: dict[str, int], ids: list[str]) -> tuple[int, int]:
    """``(lost, duplicated)`` of ``ids`` in the stream's books."""
    lost = sum(1 for i in ids if books.get(i, 0) == 0)
    duplicated = sum(books.get(i, 0) - 1 for i in ids if books.get(i, 0) > 1)
    return lost, duplicated


def learner_for(
    tmp_path: Path, stack: Any, spawn: Callable[..., Serve], name: str = "learner"
) -> Serve:
    config = write_config(
        tmp_path / name,
        nats_url=stack.nats.url,
        upstream_base=stack.upstream.base_url,
        extra="[learner]\nsnapshot_interval_ms = 100\n",
    )
    return spawn(config, tmp_path / f"{name}.log", learner=True)


async def wait_projection(config: Path, expected: int, timeout: float = 60.0) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        total = await asyncio.to_thread(stats_total, config)
        if total >= expected or loop.time() > deadline:
            return total
        await asyncio.sleep(0.3)


def projected_rows(db: Path) -> int:
    """Executions in a learner's SQLite database (0 before it exists)."""
    if not db.exists():
        return 0
    import sqlite3

    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return int(con.execute("select count(*) from executions").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0
