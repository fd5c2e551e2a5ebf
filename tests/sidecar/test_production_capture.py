"""Capturing production examples through the real HTTP path, a real nats-server and the
fake upstream: redaction before anything is published, corrections (``demonstration``
feedback) and the refusals around them, and the learner's examples table built from
that stream on SQLite, with the canary secrets nowhere in the events or the table."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from conftest import SECRET, MakeSidecar, summarize_prompt
from sqlalchemy.engine import make_url

from promptlab.events.kinds import DEMONSTRATION
from promptlab.events.models import ExecutionCompleted, FeedbackReceived
from promptlab.learner.examples import read_examples
from promptlab.learner.replay import rebuild
from promptlab.learner.storage import schema as t
from promptlab.learner.storage.store import Store
from promptlab.prompts import PromptSpec

CANARY = "ACME-7731-INTERNAL"
"""A string the operator's ``server.redact_patterns`` matches."""
POSTGRES_URL = os.environ.get(
    "PROMPTLAB_TEST_POSTGRES", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
SERVER = {"redact_patterns": [r"ACME-\d+-[A-Z]+"], "capture_max_chars": 300}


def capturing(prompt_id: str = "captured", capture: bool = True) -> PromptSpec:
    data = summarize_prompt(strategy="fixed", weights={"v1": 1.0, "v2": 0.0}).model_dump()
    data.update(id=prompt_id, learning={"capture": capture})
    return PromptSpec.model_validate(data)


async def post(url: str, body: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as resp:
        return resp.status, await resp.json()


async def call(url: str, prompt_id: str, code: str) -> str:
    status, body = await post(
        url + "/v1/chat/completions",
        {
            "model": f"promptlab/{prompt_id}",
            "messages": [],
            "promptlab": {"variables": {"code": code}},
        },
    )
    assert status == 200, body
    return str(body["id"])


def error_of(status: int, body: Any) -> dict[str, Any]:
    assert 400 <= status < 500, (status, body)
    error = body["error"]
    assert set(error) >= {"message", "type", "code"}
    return dict(error)


async def test_captured_calls_and_corrections_are_redacted_end_to_end(
    make_sidecar: MakeSidecar, tmp_path: Path
) -> None:
    sidecar = await make_sidecar(prompts=[capturing(), capturing("plain", False)], server=SERVER)
    leaky = f"def f(): return '{SECRET}' # {CANARY}"
    first = await call(sidecar.url, "captured", leaky)
    second = await call(sidecar.url, "captured", "print(1)")
    plain = await call(sidecar.url, "plain", "print(2)")

    fb = sidecar.url + "/v1/feedback"
    status, answer = await post(fb, {"execution_id": first, "name": "thumbs_up", "value": False})
    assert status == 200, answer
    fixed = f"Returns the key {SECRET} and {CANARY}."
    status, answer = await post(
        fb,
        {"execution_id": first, "name": DEMONSTRATION, "value": fixed, "comment": f"see {CANARY}"},
    )
    assert status == 200 and answer["status"] == "accepted", answer
    status, answer = await post(fb, {"execution_id": second, "name": "thumbs_up", "value": True})
    assert status == 200

    executions = await sidecar.wait_events("execution.completed", 3)
    by_id = {e.execution_id: e for e in executions if isinstance(e, ExecutionCompleted)}
    content = by_id[first].content
    assert content is not None and content.variables is not None and content.output
    assert content.variables["code"] == "def f(): return '***' # ***"
    assert SECRET not in content.output and CANARY not in content.output
    assert by_id[plain].content is None  # capture is per prompt
    corrections = [
        e
        for e in await sidecar.wait_events("feedback.received", 3)
        if isinstance(e, FeedbackReceived) and e.name == DEMONSTRATION
    ]
    assert [(c.text, c.comment, c.value) for c in corrections] == [
        ("Returns the key *** and ***.", "see ***", True)
    ]
    raw = [data async for _, _, data in sidecar.bus.read(1)]
    assert not any(SECRET.encode() in d or CANARY.encode() in d for d in raw)

    # The learner's table, projected from this very stream.
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'learner.db'}")
    await store.create()
    try:
        await rebuild(sidecar.bus, store, consumer="learner", until=len(raw))
        examples = {e.id: e for e in await read_examples(store, "captured")}
        assert set(examples) == {first, second}
        corrected = examples[first]
        assert (corrected.source, corrected.reward, corrected.answer) == (
            "correction",
            1.0,
            "Returns the key *** and ***.",
        )
        assert corrected.variables == {"code": "def f(): return '***' # ***"}
        assert corrected.replaced_answer is not None and "***" in corrected.replaced_answer
        assert (examples[second].source, examples[second].reward) == ("call", 1.0)
        assert examples[second].variables == {"code": "print(1)"}
        assert await read_examples(store, "plain") == []
        dumped = repr(await store.dump(t.examples))
        assert SECRET not in dumped and CANARY not in dumped
        # The same stream into PostgreSQL (when reachable) builds the same table.
        postgres = await _postgres_store()
        if postgres is not None:
            try:
                await rebuild(sidecar.bus, postgres, consumer="learner", until=len(raw))
                assert await postgres.dump(t.examples) == await store.dump(t.examples)
            finally:
                await postgres.drop()
                await postgres.close()
    finally:
        await store.close()


async def _postgres_store() -> Store | None:
    """A fresh schema in the test PostgreSQL, or None when there is none to use."""
    url = make_url(POSTGRES_URL)
    try:
        with socket.create_connection((url.host or "127.0.0.1", url.port or 5432), timeout=0.5):
            pass
    except OSError:
        return None
    store = Store(POSTGRES_URL, schema=f"pl_capture_{uuid.uuid4().hex[:12]}")
    try:
        await store.create()
    except Exception:  # wrong user, no database: this half is skipped
        await store.close()
        return None
    return store


async def test_text_values_only_under_demonstration(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar(
        prompts=[capturing(), capturing("plain", False)], server=SERVER, bus="memory"
    )
    captured = await call(sidecar.url, "captured", "x = 1")
    plain = await call(sidecar.url, "plain", "y = 2")
    fb = sidecar.url + "/v1/feedback"

    error = error_of(
        *await post(fb, {"execution_id": captured, "name": "thumbs_up", "value": "good"})
    )
    assert error["code"] == "text_value" and DEMONSTRATION in error["message"]
    error = error_of(*await post(fb, {"execution_id": captured, "name": "x", "value": "text"}))
    assert error["code"] == "text_value"
    error = error_of(*await post(fb, {"execution_id": captured, "name": DEMONSTRATION, "value": 1}))
    assert error["param"] == "value"
    error = error_of(
        *await post(fb, {"execution_id": captured, "name": DEMONSTRATION, "value": " "})
    )
    assert error["param"] == "value"
    too_long = "a" * 301
    error = error_of(
        *await post(fb, {"execution_id": captured, "name": DEMONSTRATION, "value": too_long})
    )
    assert error["code"] == "value_too_long" and "300" in error["message"]
    error = error_of(*await post(fb, {"execution_id": plain, "name": DEMONSTRATION, "value": "ok"}))
    assert error["code"] == "capture_off" and "[learning] capture" in error["message"]
    # An execution this sidecar does not know: accepted as pending, like any feedback.
    status, answer = await post(
        fb, {"execution_id": "elsewhere", "name": DEMONSTRATION, "value": "ok"}
    )
    assert status == 202 and answer["status"] == "pending"
    feedback = await sidecar.events("feedback.received")
    assert [f.execution_id for f in feedback] == ["elsewhere"]  # nothing refused was published


async def test_global_capture_content_captures_every_prompt(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar(
        prompts=[capturing("plain", False)], server={"capture_content": True}, bus="memory"
    )
    await call(sidecar.url, "plain", "z = 3")
    (event,) = await sidecar.wait_events("execution.completed", 1)
    assert isinstance(event, ExecutionCompleted) and event.content is not None
    assert event.content.variables == {"code": "z = 3"}


async def test_a_streamed_call_is_captured_redacted(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar(prompts=[capturing()], server=SERVER, bus="memory")
    stream = await sidecar.client().chat.completions.create(
        model="promptlab/captured",
        messages=[],
        stream=True,
        extra_body={"promptlab": {"variables": {"code": f"key = '{SECRET}'"}}},
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text  # the fake upstream echoes the rendered prompt
    (event,) = await sidecar.wait_events("execution.completed", 1)
    assert isinstance(event, ExecutionCompleted) and event.stream and event.content is not None
    assert event.content.variables == {"code": "key = '***'"}
    assert event.content.output and SECRET not in event.content.output
    assert "***" in event.content.output
