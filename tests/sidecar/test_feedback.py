"""``POST /v1/feedback`` answers what a value means: the reward scale (400 naming it),
unknown executions (202 pending with the wait), repeated feedback (which one counts)."""

from __future__ import annotations

from typing import Any

import aiohttp
import prom
from conftest import MakeSidecar

from promptlab.events.models import FeedbackReceived
from promptlab.prompts import PromptSpec
from promptlab.sidecar.feedback import FeedbackPolicy


def stars_prompt() -> PromptSpec:
    return PromptSpec.model_validate(
        {
            "id": "stars",
            "variables": [{"name": "name", "type": "string", "required": True}],
            "reward": {"feedback": "rating", "scale": [1, 5]},
            "variants": [
                {"name": "hello", "model": "simulated/alpha", "template": "Say hello to {{ name }}"}
            ],
        }
    )


async def post(url: str, body: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as resp:
        return resp.status, await resp.json()


async def served_call(url: str) -> str:
    status, body = await post(
        url + "/v1/chat/completions",
        {"model": "promptlab/stars", "messages": [], "promptlab": {"variables": {"name": "Ada"}}},
    )
    assert status == 200, body
    return str(body["id"])


async def test_a_rating_on_the_prompts_scale_is_accepted_and_off_scale_is_400(
    make_sidecar: MakeSidecar,
) -> None:
    sidecar = await make_sidecar(bus="memory", prompts=[stars_prompt()])
    execution_id = await served_call(sidecar.url)
    feedback = sidecar.url + "/v1/feedback"
    status, body = await post(
        feedback, {"execution_id": execution_id, "name": "rating", "value": 4}
    )
    assert status == 200 and body["status"] == "accepted"
    assert body["reward_value"] == 0.75 and body["scale"] == [1, 5]
    status, body = await post(
        feedback, {"execution_id": execution_id, "name": "rating", "value": 7}
    )
    assert status == 400 and "[1, 5]" in body["error"]["message"]
    assert body["error"]["param"] == "value"
    status, body = await post(
        feedback, {"execution_id": execution_id, "name": "rating", "value": True}
    )
    assert status == 400 and "[1, 5]" in body["error"]["message"]
    status, body = await post(
        feedback, {"execution_id": execution_id, "name": "rating", "value": "5 stars"}
    )
    assert status == 400
    # only the accepted one went out as an event
    events = [
        e for e in await sidecar.events("feedback.received") if isinstance(e, FeedbackReceived)
    ]
    assert [(e.execution_id, e.value) for e in events] == [(execution_id, 4.0)]


async def test_feedback_for_an_unknown_execution_is_pending_with_the_wait(
    make_sidecar: MakeSidecar,
) -> None:
    sidecar = await make_sidecar(
        bus="memory", prompts=[stars_prompt()], feedback_policy=FeedbackPolicy(wait_s=60)
    )
    status, body = await post(
        sidecar.url + "/v1/feedback", {"execution_id": "nobody", "name": "rating", "value": 9}
    )
    assert status == 202 and body["status"] == "pending" and body["wait_s"] == 60
    assert "60s" in body["message"]
    await sidecar.wait_events("feedback.received", 1)  # the learner decides (and counts)
    async with aiohttp.ClientSession() as session, session.get(sidecar.url + "/metrics") as resp:
        text = await resp.text()
    assert prom.value(text, "promptlab_feedback_total", status="pending") == 1


async def test_the_answer_says_which_repeated_feedback_counts(make_sidecar: MakeSidecar) -> None:
    for policy, second_counts in (("last", "this feedback"), ("first", "the first feedback")):
        sidecar = await make_sidecar(
            bus="memory", prompts=[stars_prompt()], feedback_policy=FeedbackPolicy(repeat=policy)
        )
        execution_id = await served_call(sidecar.url)
        body = {"execution_id": execution_id, "name": "rating", "value": 2}
        status, first = await post(sidecar.url + "/v1/feedback", body)
        assert status == 200 and not first["repeated"] and first["repeat_policy"] == policy
        status, second = await post(sidecar.url + "/v1/feedback", {**body, "value": 5})
        assert status == 200 and second["repeated"]
        assert second["counts"].startswith(second_counts), second
