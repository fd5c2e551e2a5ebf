"""Fallbacks, and how they are recorded.

* Model fallbacks: a provider's ``fallbacks`` are tried in order when the primary fails
  before anything reached the client (5xx, timeout, connect error; never a 4xx); the one
  execution records the model that answered and every attempt.
* Variant fallback: a routed variant that cannot answer (its provider fails or is not
  configured) falls back to the champion; the routed variant's execution is recorded as
  an error with ``fell_back_to``, the champion's with ``routing.fallback_from``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai
import pytest
import raw_upstream as up
from conftest import SECRET, MakeSidecar, summarize_prompt

from promptlab.events.models import ExecutionCompleted, ModelAttempt
from promptlab.prompts import PromptSpec

HI = [{"role": "user", "content": "hi"}]
VARS = {"promptlab": {"variables": {"code": "x"}}}


@pytest.fixture
async def raw() -> AsyncIterator[up.RawUpstream]:
    server = up.RawUpstream()
    await server.start()
    yield server
    await server.stop()


async def test_a_fallback_chain_answers_and_records_every_attempt(
    make_sidecar: MakeSidecar, raw: up.RawUpstream
) -> None:
    raw.then(up.response(500, b"{}"))  # primary fails (max_retries 0), then the fake answers
    sidecar = await make_sidecar(
        providers={
            "flaky": {
                "api_base": raw.base_url,
                "max_retries": 0,
                "fallbacks": ["dead/m", "fake/backup"],
            },
            "dead": {"api_base": "http://127.0.0.1:1/v1", "max_retries": 0},
        }
    )
    answer = await sidecar.client().chat.completions.create(model="flaky/m", messages=HI)
    assert answer.choices[0].message.content == "echo: hi"
    assert sidecar.upstream.requests[-1].body["model"] == "backup"
    [event] = await sidecar.wait_events("execution.completed", 1)
    assert isinstance(event, ExecutionCompleted)
    assert (event.status, event.model, event.provider) == ("ok", "fake/backup", "fake")
    assert event.attempts == [
        ModelAttempt(model="flaky/m", error_kind="upstream_5xx"),
        ModelAttempt(model="dead/m", error_kind="connect"),
        ModelAttempt(model="fake/backup", error_kind=None),
    ]


async def test_a_client_error_does_not_fall_back(
    make_sidecar: MakeSidecar, raw: up.RawUpstream
) -> None:
    raw.then(up.response(400, b'{"error": {"message": "bad request"}}'))
    sidecar = await make_sidecar(
        providers={"flaky": {"api_base": raw.base_url, "fallbacks": ["fake/backup"]}}
    )
    with pytest.raises(openai.BadRequestError):
        await sidecar.client().chat.completions.create(model="flaky/m", messages=HI)
    assert sidecar.upstream.requests == []
    [event] = await sidecar.wait_events("execution.completed", 1)
    assert isinstance(event, ExecutionCompleted)
    assert (event.status, event.error_kind, event.http_status) == ("error", "bad_request", 400)


async def test_a_failed_chain_records_every_attempt(
    make_sidecar: MakeSidecar, raw: up.RawUpstream
) -> None:
    raw.then(up.response(503, b"{}"), up.response(503, b"{}"))
    sidecar = await make_sidecar(
        providers={
            "a": {"api_base": raw.base_url, "max_retries": 0, "fallbacks": ["b/m"]},
            "b": {"api_base": raw.base_url, "max_retries": 0},
        }
    )
    with pytest.raises(openai.InternalServerError):
        await sidecar.client().chat.completions.create(model="a/m", messages=HI)
    [event] = await sidecar.wait_events("execution.completed", 1)
    assert isinstance(event, ExecutionCompleted) and event.status == "error"
    assert [a.model for a in event.attempts] == ["a/m", "b/m"]
    assert raw.requests == 2


def prompt_with_unservable_challenger() -> PromptSpec:
    spec = summarize_prompt(strategy="fixed", weights={"v1": 0.0, "v2": 1.0})
    data = spec.model_dump()
    data["variants"][1]["model"] = "nowhere/model-b"
    return PromptSpec.model_validate(data)


async def test_a_variant_whose_provider_is_missing_falls_back_to_the_champion(
    make_sidecar: MakeSidecar,
) -> None:
    sidecar = await make_sidecar(prompts=[prompt_with_unservable_challenger()])
    raw = await sidecar.client().chat.completions.with_raw_response.create(
        model="promptlab/summarize", messages=[], extra_body=VARS
    )
    assert raw.headers["X-Promptlab-Variant"] == "v1"
    events = await sidecar.wait_events("execution.completed", 2)
    failed, answered = sorted(events, key=lambda e: e.status != "error")  # type: ignore[attr-defined]
    assert isinstance(failed, ExecutionCompleted) and isinstance(answered, ExecutionCompleted)
    assert (failed.variant, failed.status, failed.error_kind) == ("v2", "error", "not_configured")
    assert failed.fell_back_to == "v1"
    assert answered.variant == "v1" and answered.routing is not None
    assert answered.routing.fallback_from == "v2" and answered.fell_back_to is None


async def test_a_failing_challenger_is_recorded_as_its_failure(
    make_sidecar: MakeSidecar,
) -> None:
    sidecar = await make_sidecar(
        prompts=[summarize_prompt(strategy="fixed", weights={"v1": 0.0, "v2": 1.0})]
    )
    sidecar.upstream.fail_models["model-b"] = 500
    stream = await sidecar.client().chat.completions.create(
        model="promptlab/summarize", messages=[], extra_body=VARS, stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "echo: Summarize: x"
    events = await sidecar.wait_events("execution.completed", 2)
    failed, answered = sorted(events, key=lambda e: e.status != "error")  # type: ignore[attr-defined]
    assert isinstance(failed, ExecutionCompleted) and isinstance(answered, ExecutionCompleted)
    assert (failed.variant, failed.error_kind, failed.fell_back_to) == ("v2", "upstream_5xx", "v1")
    assert answered.routing is not None and answered.routing.fallback_from == "v2"


async def test_an_unservable_champion_is_a_502_not_the_clients_400(
    make_sidecar: MakeSidecar,
) -> None:
    spec = summarize_prompt().model_dump()
    spec["variants"] = [{**spec["variants"][0], "model": "nowhere/m"}]
    sidecar = await make_sidecar(prompts=[PromptSpec.model_validate(spec)])
    with pytest.raises(openai.APIStatusError) as caught:
        await sidecar.client().chat.completions.create(
            model="promptlab/summarize", messages=[], extra_body=VARS
        )
    assert caught.value.status_code == 502
    [event] = await sidecar.wait_events("execution.completed", 1)
    assert isinstance(event, ExecutionCompleted) and event.error_kind == "not_configured"


async def test_variant_params_cannot_redirect_a_call(make_sidecar: MakeSidecar) -> None:
    spec = summarize_prompt().model_dump()
    spec["variants"] = [
        {**spec["variants"][0], "params": {"api_base": "http://169.254.169.254", "temperature": 0}}
    ]
    try:
        prompt = PromptSpec.model_validate(spec)
    except ValueError:
        pytest.skip("the prompt kernel refuses such params already")
    sidecar = await make_sidecar(prompts=[prompt])
    await sidecar.client().chat.completions.create(
        model="promptlab/summarize", messages=[], extra_body=VARS
    )
    forwarded = sidecar.upstream.requests[-1].body
    assert "api_base" not in forwarded and forwarded["temperature"] == 0


async def test_a_variant_whose_model_does_not_exist_is_logged_once_at_warning(
    make_sidecar: MakeSidecar, caplog: pytest.LogCaptureFixture
) -> None:
    sidecar = await make_sidecar(
        prompts=[summarize_prompt(strategy="fixed", weights={"v1": 0.0, "v2": 1.0})]
    )
    sidecar.upstream.fail_models["model-b"] = 404  # answers OpenAI's model_not_found
    client = sidecar.client()
    with caplog.at_level("WARNING", logger="promptlab.sidecar.proxy"):
        for _ in range(3):
            raw = await client.chat.completions.with_raw_response.create(
                model="promptlab/summarize", messages=[], extra_body=VARS
            )
            assert raw.headers["X-Promptlab-Variant"] == "v1"  # the champion answered
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "failed" in r.message]
    assert len(warnings) == 1, [r.message for r in warnings]
    message = warnings[0].getMessage()
    assert "variant v2 of prompt summarize (model fake/model-b)" in message
    assert "upstream 404 model_not_found" in message and SECRET not in message
    events = await sidecar.wait_events("execution.completed", 6)
    failed = [e for e in events if isinstance(e, ExecutionCompleted) and e.status == "error"]
    assert len(failed) == 3 and all(e.http_status == 404 for e in failed)


async def test_a_missing_model_on_passthrough_keeps_model_not_found(
    make_sidecar: MakeSidecar,
) -> None:
    sidecar = await make_sidecar()
    sidecar.upstream.fail_models["gpt-nope"] = 404
    with pytest.raises(openai.NotFoundError) as caught:
        await sidecar.client().chat.completions.create(model="fake/gpt-nope", messages=HI)
    assert caught.value.code == "model_not_found"
    assert "The model `gpt-nope` does not exist" in caught.value.message
