"""Cases 6, 7 and 20: the upstream fails in every way; the client gets an OpenAI-shaped
error within the deadline, each call is recorded exactly once with status error, a POST
is never sent twice, and the provider key (a canary) appears nowhere but upstream.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hostile import HostileUpstream
from procs import CANARY, KEY_ENV, Serve, Stack, rss_mb, stream_events, write_config

from promptlab.events.models import ExecutionCompleted
from promptlab.events.rejects import REJECT_DIR

MAX_RETRIES = 2


def hostile_toml(base_url: str) -> str:
    return (
        f'[providers.hostile]\nkind = "openai"\napi_base = "{base_url}"\n'
        f'api_key_env = "{KEY_ENV}"\nmax_retries = {MAX_RETRIES}\nretry_backoff_s = 0.01\n'
        "retry_backoff_max_s = 2.0\nfirst_token_timeout_s = 1.0\ntotal_timeout_s = 8.0\n"
    )


@pytest.fixture
async def hostile() -> AsyncIterator[HostileUpstream]:
    server = HostileUpstream()
    await server.start()
    yield server
    await server.stop()


async def failing_call(url: str, kind: str, marker: str, *, stream: bool = False) -> dict[str, Any]:
    """One unrouted call to ``hostile/<kind>``: status, body or SSE text, timing."""
    body = {
        "model": f"hostile/{kind}",
        "messages": [{"role": "user", "content": marker}],
        "stream": stream,
    }
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=40)) as session:
        async with session.post(url + "/v1/chat/completions", json=body) as resp:
            raw = await resp.read()
            return {
                "status": resp.status,
                "content_type": resp.content_type,
                "execution_id": resp.headers.get("X-Promptlab-Execution"),
                "raw": raw,
                "elapsed": loop.time() - started,
            }


def openai_error(result: dict[str, Any]) -> bool:
    try:
        error = json.loads(result["raw"])["error"]
    except (ValueError, KeyError, TypeError):
        return False
    return isinstance(error, dict) and isinstance(error.get("message"), str)


async def events_for(nats_url: str, execution_id: str | None, timeout: float = 15) -> list[Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = [
            e
            for e in await stream_events(nats_url)
            if isinstance(e, ExecutionCompleted) and e.execution_id == execution_id
        ]
        if found or loop.time() > deadline:
            return found
        await asyncio.sleep(0.1)


NON_STREAMED = [
    pytest.param("429", MAX_RETRIES + 1, id="429-retry-after-1"),
    pytest.param("429-long", 1, id="429-retry-after-100"),
    pytest.param("500", MAX_RETRIES + 1, id="500"),
    pytest.param("502", MAX_RETRIES + 1, id="502"),
    pytest.param("503", MAX_RETRIES + 1, id="503"),
    pytest.param("401", 1, id="401-no-retry"),
    pytest.param("hang", None, id="no-first-token"),
    pytest.param("bad-gzip", None, id="malformed-gzip"),
    pytest.param("huge", None, id="oversized-body"),
]


@pytest.mark.parametrize(("kind", "attempts"), NON_STREAMED)
async def test_06_upstream_failure(
    kind: str,
    attempts: int | None,
    stack: Callable[..., Stack],
    hostile: HostileUpstream,
    figures: dict[str, Any],
) -> None:
    s = stack(hostile_toml(hostile.base_url))
    rss_before = rss_mb(s.serve.pid)
    result = await failing_call(s.url, kind, f"m-{kind}")
    assert 400 <= result["status"] < 600 and openai_error(result), result
    assert CANARY not in result["raw"].decode(errors="replace")
    seen = hostile.seen[f"m-{kind}"]
    if attempts is not None:
        assert seen == attempts, (seen, attempts)
    assert seen <= MAX_RETRIES + 1
    assert result["elapsed"] < 8.0 + 4.0  # within the total deadline (slack: a loaded box)
    if kind == "429-long":
        assert result["elapsed"] < 2.0, "Retry-After: 100 must end the retries at once"
    if kind == "429":
        times = hostile.times[f"m-{kind}"]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert min(gaps) >= 0.9, f"Retry-After: 1 not honoured: gaps {gaps}"
    events = await events_for(s.nats.url, result["execution_id"])
    assert [e.status for e in events] == ["error"], events
    growth = rss_mb(s.serve.pid) - rss_before
    assert growth < 200, growth
    figures.update(
        status=result["status"],
        attempts=seen,
        events=len(events),
        elapsed_s=round(result["elapsed"], 2),
    )


STREAMED = [
    pytest.param("drop-stream", id="drop-mid-stream"),
    pytest.param("sse-error", id="sse-error-mid-stream"),
]


@pytest.mark.parametrize("kind", STREAMED)
async def test_06_broken_stream_ends_with_an_error_event(
    kind: str,
    stack: Callable[..., Stack],
    hostile: HostileUpstream,
    figures: dict[str, Any],
) -> None:
    s = stack(hostile_toml(hostile.base_url))
    result = await failing_call(s.url, kind, f"m-{kind}", stream=True)
    text = result["raw"].decode(errors="replace")
    assert "[DONE]" not in text, text
    assert '"error"' in text, text
    assert CANARY not in text
    events = await events_for(s.nats.url, result["execution_id"])
    assert [e.status for e in events] == ["error"], events
    assert hostile.seen[f"m-{kind}"] == 1
    figures.update(done_marker=0, error_event=1, events=len(events))


async def test_07_post_never_resent_on_a_reused_connection(
    stack: Callable[..., Stack], hostile: HostileUpstream, figures: dict[str, Any]
) -> None:
    s = stack(hostile_toml(hostile.base_url).replace("max_retries = 2", "max_retries = 0"))
    first = await failing_call(s.url, "close-reused", "warm-up")
    assert first["status"] == 200
    second = await failing_call(s.url, "close-reused", "once-only")
    assert hostile.seen["once-only"] == 1, hostile.seen
    assert openai_error(second)
    figures.update(upstream_saw=hostile.seen["once-only"])


@pytest.mark.slow
async def test_20_canary_key_never_leaks(
    tmp_path: Path,
    stack: Callable[..., Stack],
    hostile: HostileUpstream,
    spawn: Callable[..., Serve],
    figures: dict[str, Any],
) -> None:
    s = stack(hostile_toml(hostile.base_url))
    bodies: list[bytes] = []
    for kind in ("429-long", "500", "502", "503", "401", "hang", "bad-gzip", "huge"):
        bodies.append((await failing_call(s.url, kind, f"c-{kind}"))["raw"])
    for kind in ("drop-stream", "sse-error"):
        bodies.append((await failing_call(s.url, kind, f"c-{kind}", stream=True))["raw"])
    assert CANARY in {a.removeprefix("Bearer ") for a in hostile.auth_seen}  # the key is real
    events = await stream_events(s.nats.url)
    learner_config = write_config(
        tmp_path / "learner", nats_url=s.nats.url, upstream_base=s.upstream.base_url
    )
    learner = spawn(learner_config, tmp_path / "learner.log", learner=True)
    db = tmp_path / "learner" / "promptlab.db"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while loop.time() < deadline and not (db.exists() and db.stat().st_size > 0):  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    state = _tui_text(events)
    places = {
        "error bodies": b"\n".join(bodies).decode(errors="replace"),
        "events": "\n".join(e.model_dump_json() for e in events),
        "sidecar log": s.serve.log_text(),
        "learner log": learner.log_text(),
        "outbox": _files_text(s.outbox_dir),
        "rejects": _files_text(s.outbox_dir / REJECT_DIR),
        "database": _files_text(tmp_path / "learner"),
        "tui feed": state,
    }
    occurrences = {name: text.count(CANARY) for name, text in places.items()}
    leaks = {k: v for k, v in occurrences.items() if v}
    figures.update(canary_occurrences=sum(occurrences.values()), places=len(places), leaks=leaks)
    assert sum(occurrences.values()) == 0, occurrences


def _files_text(directory: Path) -> str:
    if not directory.exists():
        return ""
    return "\n".join(
        p.read_bytes().decode(errors="replace") for p in directory.rglob("*") if p.is_file()
    )


def _tui_text(events: list[Any]) -> str:
    """What the TUI's execution feed would show for these events."""
    from promptlab.tui.state import LabState
    from promptlab.tui.views import feed_row

    state = LabState()
    for event in events:
        state.apply_event(event, now=0.0, live=True)
    rows = [feed_row(row) for prompt in state.sorted_prompts() for row in prompt.executions]
    return repr(rows)
