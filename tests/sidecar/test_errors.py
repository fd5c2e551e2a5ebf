"""Errors are OpenAI-shaped, with the right status, and never carry a secret."""

from __future__ import annotations

import aiohttp
import openai
import pytest
from conftest import SECRET, MakeSidecar, summarize_prompt

from promptlab.events.models import ExecutionCompleted

VARS = {"promptlab": {"variables": {"code": "x"}}}


async def post(
    url: str, data: bytes | str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, object]]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url, data=data, headers=headers or {"Content-Type": "application/json"}
        ) as resp,
    ):
        return resp.status, await resp.json()


def assert_openai_error(body: dict[str, object]) -> dict[str, object]:
    error = body["error"]
    assert isinstance(error, dict) and set(error) == {"message", "type", "code", "param"}
    return error


@pytest.mark.parametrize("data", [b"{not json", b"[1, 2]", b'"text"'])
async def test_malformed_or_non_object_json_is_400(make_sidecar: MakeSidecar, data: bytes) -> None:
    sidecar = await make_sidecar(bus="memory")
    status, body = await post(sidecar.url + "/v1/chat/completions", data)
    assert status == 400
    assert assert_openai_error(body)["code"] == "invalid_json"


async def test_unknown_prompt_is_400(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar(bus="memory")
    with pytest.raises(openai.BadRequestError) as caught:
        await sidecar.client().chat.completions.create(model="promptlab/nope", messages=[])
    assert "unknown prompt 'nope'" in caught.value.message


async def test_variable_errors_name_the_variable_and_the_rule(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar(bus="memory")
    client = sidecar.client()
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(
            model="promptlab/summarize", messages=[], extra_body={"promptlab": {"variables": {}}}
        )
    assert "'code'" in caught.value.message and "required" in caught.value.message
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(
            model="promptlab/summarize",
            messages=[],
            extra_body={"promptlab": {"variables": {"code": "x" * 500}}},
        )
    body = caught.value.body
    assert (
        isinstance(body, dict)
        and body["param"] == "promptlab.variables.code"
        and "max_length" in body["message"]
    )
    assert sidecar.upstream.requests == []


async def test_body_over_the_limit_is_413(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar(bus="memory", server={"max_body_bytes": 2048})
    status, body = await post(
        sidecar.url + "/v1/chat/completions", b'{"model": "fake/x", "pad": "' + b"a" * 5000 + b'"}'
    )
    assert status == 413 and assert_openai_error(body)["code"] == "body_too_large"


async def test_api_keys_are_required_when_configured(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar(bus="memory", server={"api_keys": ["client-key-1"]})
    with pytest.raises(openai.AuthenticationError):
        await sidecar.client(api_key="wrong").chat.completions.create(
            model="promptlab/summarize", messages=[], extra_body=VARS
        )
    ok = await sidecar.client(api_key="client-key-1").chat.completions.create(
        model="promptlab/summarize", messages=[], extra_body=VARS
    )
    assert ok.choices


async def test_upstream_500_is_retried_then_502(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar()
    sidecar.upstream.fail_next(500, times=3, message=f"database on fire, key {SECRET}")
    with pytest.raises(openai.InternalServerError) as caught:
        await sidecar.client().chat.completions.create(
            model="fake/m", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.status_code == 502
    assert len(sidecar.upstream.requests) == 3  # one call and max_retries = 2
    text = caught.value.response.text
    assert "database on fire" in text and SECRET not in text and "***" in text
    [event] = await sidecar.wait_events("execution.completed", 1)
    assert (
        isinstance(event, ExecutionCompleted)
        and event.status == "error"
        and event.http_status == 502
    )
    assert event.execution_id == caught.value.response.headers["X-Promptlab-Execution"]


async def test_429_with_retry_after_is_honoured_then_succeeds(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar(bus="memory")
    sidecar.upstream.fail_next(429, retry_after="0.05")
    completion = await sidecar.client().chat.completions.create(
        model="fake/m", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.choices[0].message.content == "echo: hi"
    assert len(sidecar.upstream.requests) == 2


async def test_upstream_timeout_is_504(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar(bus="memory", providers={"slow": {"total_timeout_s": 0.3}})
    sidecar.upstream.hang_next(2.0)
    with pytest.raises(openai.APIStatusError) as caught:
        await sidecar.client().chat.completions.create(
            model="slow/m", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.status_code == 504
    assert assert_openai_error(caught.value.response.json())["type"] == "timeout_error"


async def test_challenger_failure_falls_back_to_the_champion(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar(
        prompts=[summarize_prompt(strategy="fixed", weights={"v1": 0.0, "v2": 1.0})]
    )
    sidecar.upstream.fail_models["model-b"] = 500
    raw = await sidecar.client().chat.completions.with_raw_response.create(
        model="promptlab/summarize", messages=[], extra_body=VARS
    )
    assert raw.headers["X-Promptlab-Variant"] == "v1"
    assert raw.parse().choices[0].message.content == "echo: Summarize: x"
    events = await sidecar.wait_events("execution.completed", 2)
    failed, answered = sorted(events, key=lambda e: e.status != "error")  # type: ignore[attr-defined]
    assert isinstance(failed, ExecutionCompleted) and isinstance(answered, ExecutionCompleted)
    assert (failed.variant, failed.status) == ("v2", "error")
    assert (answered.variant, answered.status) == ("v1", "ok")
    assert answered.routing is not None and answered.routing.fallback_from == "v2"
    assert answered.execution_id == raw.headers["X-Promptlab-Execution"]


async def test_secrets_never_reach_events(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar(server={"capture_content": True})
    sidecar.upstream.fail_next(401, message=f"invalid key {SECRET}")
    with pytest.raises(openai.APIStatusError) as caught:
        await sidecar.client().chat.completions.create(
            model="fake/m", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.status_code == 502 and SECRET not in caught.value.response.text
    await sidecar.client().chat.completions.create(
        model="promptlab/summarize", messages=[], extra_body=VARS
    )
    await sidecar.wait_events("execution.completed", 2)
    raw = [data async for _, _, data in sidecar.bus.read(1)]
    assert raw and not any(SECRET.encode() in data for data in raw)


async def test_unknown_route_is_openai_shaped_404(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar(bus="memory")
    status, body = await post(sidecar.url + "/v1/nothing", b"{}")
    assert status == 404 and assert_openai_error(body)
