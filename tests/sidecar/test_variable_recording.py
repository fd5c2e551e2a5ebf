"""Real calls through the sidecar record the variable values analytics may keep, and
nothing else; projected by the learner, they are the admin API's most used values."""

from __future__ import annotations

import functools
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from conftest import SECRET, MakeSidecar

from promptlab.events.bus import Delivery
from promptlab.events.models import ExecutionCompleted
from promptlab.learner.projection.transaction import Projection
from promptlab.learner.storage.periods import period_analytics
from promptlab.learner.storage.store import Store
from promptlab.prompts import PromptSpec

PRIVATE = "call me on 555-0199, I live at 1 Main Street"


def support_prompt() -> PromptSpec:
    return PromptSpec.model_validate(
        {
            "id": "support",
            "variables": [
                {"name": "question", "required": True},  # the user's text: never recorded
                {"name": "product", "analytics": True},  # opted in
                {"name": "note", "analytics": True},  # opted in, but may carry a key
                {"name": "tone", "enum": ["formal", "casual"], "default": "formal"},
                {"name": "n", "type": "integer"},
            ],
            "variants": [
                {
                    "name": "v1",
                    "model": "fake/model-a",
                    "template": "{{ tone }} {{ product }} {{ question }} {{ note }}"
                    "{% if n is defined %} {{ n }}{% endif %}",
                }
            ],
        }
    )


async def _report(
    store: Store, prompt_id: str, interval: str, start: datetime | None, end: datetime | None
) -> dict[str, Any]:
    report = await period_analytics(store, prompt_id, interval=interval, start=start, end=end)  # type: ignore[arg-type]
    return report.to_dict()


async def test_a_call_records_only_the_values_analytics_may_keep(
    make_sidecar: MakeSidecar, tmp_path: Path
) -> None:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'learner.db'}")
    await store.create()
    try:
        sidecar = await make_sidecar(
            prompts=[support_prompt()], analytics=functools.partial(_report, store)
        )
        client = sidecar.client()
        calls = [
            {"question": PRIVATE, "product": "lamp " * 30, "note": "ok", "n": 3},
            {"question": PRIVATE, "product": "desk", "note": f"key {SECRET}", "tone": "casual"},
            {"question": PRIVATE, "product": "desk", "note": "token sk-abcdefghijklmnop"},
        ]
        for variables in calls:
            await client.chat.completions.create(
                model="promptlab/support",
                messages=[],
                extra_body={"promptlab": {"variables": variables}},
            )
        executions = await sidecar.wait_events("execution.completed", 3)
        recorded = [e.variable_values for e in executions if isinstance(e, ExecutionCompleted)]
        assert recorded == [
            {"product": ("lamp " * 30)[:64], "note": "ok", "tone": "formal", "n": 3},
            {"product": "desk", "tone": "casual"},  # the note carried a key: left out whole
            {"product": "desk", "tone": "formal"},  # a key-shaped token: left out too
        ]
        raw = b"".join([data async for _, _, data in sidecar.bus.read(1)])
        assert b"555-0199" not in raw and SECRET.encode() not in raw
        assert b"sk-abcdefghijklmnop" not in raw

        projection = Projection(store, consumer="learner")
        await projection.load()
        await projection.apply(
            [
                Delivery(sequence=seq, event=event, data=data)
                async for seq, event, data in sidecar.bus.read(1)
            ]
        )
        async with (
            aiohttp.ClientSession() as session,
            session.get(sidecar.url + "/admin/prompts/support/analytics?interval=hour") as resp,
        ):
            assert resp.status == 200
            body = await resp.json()
        [period] = body["all_variants"]
        assert period["executions"] == 3
        top = {v["variable"]: (v["recorded"], v["values"]) for v in period["top_values"]}
        assert top["product"] == (
            3,
            [
                {"value": "desk", "count": 2, "change": None},
                {"value": ("lamp " * 30)[:64], "count": 1, "change": None},
            ],
        )
        assert top["tone"][1][0] == {"value": "formal", "count": 2, "change": None}
        assert top["n"] == (1, [{"value": 3, "count": 1, "change": None}])
        assert "question" not in top and top["note"][0] == 1
    finally:
        await store.close()
