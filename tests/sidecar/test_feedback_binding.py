"""Feedback bound to its caller (``server.api_keys``): the key that made an execution,
or an admin key, may rate it; another key gets the same 404 as an unknown id."""

from __future__ import annotations

from typing import Any

import aiohttp
from conftest import MakeSidecar
from test_feedback import stars_prompt

from promptlab.events.models import FeedbackReceived
from promptlab.sidecar.auth import KeyRing
from promptlab.sidecar.binding import ExecutionIds

KEYS = {"api_keys": ["key-a-0123456789", "key-b-0123456789"], "admin_keys": ["adm-0123456789"]}


async def post(url: str, body: Any, key: str) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=body, headers=headers) as resp,
    ):
        return resp.status, await resp.json()


async def test_only_the_calling_key_or_an_admin_key_rates_an_execution(
    make_sidecar: MakeSidecar,
) -> None:
    sidecar = await make_sidecar(bus="memory", prompts=[stars_prompt()], server=KEYS)
    call = {"model": "promptlab/stars", "messages": [], "promptlab": {"variables": {"name": "A"}}}
    status, made = await post(sidecar.url + "/v1/chat/completions", call, "key-a-0123456789")
    assert status == 200
    execution_id = made["id"]
    assert len(execution_id) == 48

    def rating(eid: str) -> dict[str, Any]:
        return {"execution_id": eid, "name": "rating", "value": 4}

    feedback = sidecar.url + "/v1/feedback"
    wrong_key = await post(feedback, rating(execution_id), "key-b-0123456789")
    unknown = await post(feedback, rating("f" * 48), "key-b-0123456789")
    assert wrong_key[0] == unknown[0] == 404
    assert wrong_key[1]["error"]["code"] == unknown[1]["error"]["code"] == "unknown_execution"
    assert (await post(feedback, rating(execution_id), "key-a-0123456789"))[0] == 200
    assert (await post(feedback, rating(execution_id), "adm-0123456789"))[0] == 200
    # The admin key rates; it still calls nothing else on /v1.
    assert (await post(sidecar.url + "/v1/chat/completions", call, "adm-0123456789"))[0] == 401
    feedbacks = [e for e in await sidecar.events() if isinstance(e, FeedbackReceived)]
    assert len(feedbacks) == 2  # the refused ones were never published


def test_ids_are_bound_only_when_client_keys_are_set() -> None:
    open_ids = ExecutionIds(KeyRing([]), KeyRing([]))
    plain = open_ids.new("Bearer anything")
    assert len(plain) == 32 and open_ids.may_rate(plain, None)
    bound = ExecutionIds(KeyRing(["k1-0123456789"]), KeyRing([]))
    mine = bound.new("Bearer k1-0123456789")
    assert bound.may_rate(mine, "Bearer k1-0123456789")
    assert not bound.may_rate(mine, "Bearer k2-0123456789")
    assert not bound.may_rate(mine[:-1] + ("0" if mine[-1] != "0" else "1"), "Bearer k1-0123456789")
    assert not bound.may_rate(plain, "Bearer k1-0123456789")  # made before keys were set
