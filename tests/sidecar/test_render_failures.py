"""A routed call whose input the template cannot use is the caller's 4xx, never a 500.

An optional variable the call leaves out (no default) renders as an empty value the
template can test; any rendering failure that is left (a filter on an empty list, a key
an object lacks, a division by zero, a repetition or a power too large) is a 400
``template_render_failed`` naming the variable, recorded once as an error execution of
the variant that failed. Everything else a caller can get wrong in ``promptlab`` is
refused at the door with an OpenAI-shaped 4xx and nothing recorded.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from conftest import MakeSidecar

from promptlab.events.models import ExecutionCompleted
from promptlab.prompts import PromptSpec

CHAT = "/v1/chat/completions"


def prompt(prompt_id: str, variables: list[dict[str, Any]], *templates: str) -> PromptSpec:
    """A prompt on the fake upstream; the first template is the champion's."""
    return PromptSpec.model_validate(
        {
            "id": prompt_id,
            "variables": variables,
            # Every call goes to the last variant.
            "routing": {
                "strategy": "fixed",
                "weights": {
                    f"v{i}": float(i == len(templates)) for i in range(1, len(templates) + 1)
                },
            },
            "variants": [
                {"name": f"v{i}", "model": "fake/model-a", "template": template}
                for i, template in enumerate(templates, 1)
            ],
        }
    )


PROMPTS = [
    prompt(
        "count",
        [{"name": "n", "type": "integer"}, {"name": "unit"}],
        "Count{% if n %} to {{ n }}{% endif %}{{ unit }}."
        "{% if unit is defined %} in {{ unit }}{% endif %}{{ (n or 0) + 1 }}{{ n | default(7) }}",
    ),
    prompt(
        "first",
        [{"name": "items", "type": "array", "required": True}],
        "First: {{ items | first }}",
    ),
    prompt(
        "lookup",
        [{"name": "obj", "type": "object", "required": True}],
        "Name: {{ obj.name | upper }}",
    ),
    prompt("ratio", [{"name": "n", "type": "number", "required": True}], "{{ 100 / n }}"),
    prompt(
        "sorted",
        [{"name": "tags", "type": "array", "required": True}],
        "{{ tags | sort | join(', ') }}",
    ),
    prompt(
        "heading",
        [{"name": "level", "type": "integer", "required": True}],
        "{{ '#' * level }} Title",
    ),
    prompt("power", [{"name": "n", "type": "integer", "required": True}], "{{ 2 ** n }}"),
    prompt("greet", [{"name": "name", "required": True}], "Hello {{ name | lower }}"),
]


async def post(
    url: str, body: dict[str, Any] | bytes
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """``body`` as JSON, or as the bytes given (for what ``json.dumps`` cannot write)."""
    kwargs: dict[str, Any] = (
        {"data": body, "headers": {"Content-Type": "application/json"}}
        if isinstance(body, bytes)
        else {"json": body}
    )
    async with aiohttp.ClientSession() as session, session.post(url, **kwargs) as resp:
        return resp.status, dict(resp.headers), await resp.json(content_type=None)


def ratio(n: bytes) -> bytes:
    """A call to ``ratio`` with ``n`` written as the bytes given."""
    return b'{"model": "promptlab/ratio", "promptlab": {"variables": {"n": ' + n + b"}}}"


def openai_error(body: dict[str, Any]) -> dict[str, Any]:
    error = body.get("error")
    assert isinstance(error, dict), body
    assert {"message", "type", "code", "param"} <= set(error), error
    assert isinstance(error["message"], str) and error["message"]
    assert "Traceback" not in error["message"]
    return error


def routed(prompt_id: str, promptlab: Any, **extra: Any) -> dict[str, Any]:
    return {"model": f"promptlab/{prompt_id}", "messages": [], "promptlab": promptlab, **extra}


async def test_an_optional_variable_left_out_renders_as_an_empty_value(
    make_sidecar: MakeSidecar,
) -> None:
    sidecar = await make_sidecar(prompts=PROMPTS)
    status, _, body = await post(sidecar.url + CHAT, routed("count", {"variables": {}}))
    assert status == 200, body
    status, _, given = await post(
        sidecar.url + CHAT, routed("count", {"variables": {"n": 3, "unit": "s"}})
    )
    assert status == 200, given
    sent = [r.body["messages"][0]["content"] for r in sidecar.upstream.requests]
    assert sent == ["Count.17", "Count to 3s. in s43"]
    executions = await sidecar.wait_events("execution.completed", 2)
    assert [e.status for e in executions if isinstance(e, ExecutionCompleted)] == ["ok", "ok"]


async def test_a_render_failure_is_a_400_naming_the_variable_recorded_once(
    make_sidecar: MakeSidecar,
) -> None:
    sidecar = await make_sidecar(prompts=PROMPTS)
    status, headers, body = await post(
        sidecar.url + CHAT, routed("first", {"variables": {"items": []}})
    )
    assert status == 400
    error = openai_error(body)
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "template_render_failed"
    assert error["param"] == "promptlab.variables.items"
    assert "'items'" in error["message"] and "First:" not in error["message"]
    execution_id = headers["X-Promptlab-Execution"]
    assert headers["X-Promptlab-Variant"] == "v1"
    assert sidecar.upstream.requests == []
    # A normal call afterwards, so the failed call's event has surely been published.
    status, _, _ = await post(sidecar.url + CHAT, routed("first", {"variables": {"items": ["a"]}}))
    assert status == 200
    executions = [
        e for e in await sidecar.wait_events("execution.completed", 2)
        if isinstance(e, ExecutionCompleted)
    ]  # fmt: skip
    failed = [e for e in executions if e.execution_id == execution_id]
    assert len(failed) == 1 and len(executions) == 2
    assert (failed[0].status, failed[0].error_kind, failed[0].http_status) == (
        "error", "template_render_failed", 400,
    )  # fmt: skip
    assert failed[0].variant == "v1" and failed[0].prompt_id == "first"


async def test_a_challenger_that_cannot_render_falls_back_to_the_champion(
    make_sidecar: MakeSidecar,
) -> None:
    # All traffic goes to v2, whose template needs an item the champion does not.
    spec = prompt(
        "items", [{"name": "items", "type": "array", "required": True}],
        "Items: {{ items | join(', ') }}", "First: {{ items | first }}",
    )  # fmt: skip
    sidecar = await make_sidecar(prompts=[spec])
    status, headers, body = await post(
        sidecar.url + CHAT, routed("items", {"variables": {"items": []}})
    )
    assert status == 200, body
    assert headers["X-Promptlab-Variant"] == "v1"
    assert [r.body["messages"][0]["content"] for r in sidecar.upstream.requests] == ["Items: "]
    executions = [
        e for e in await sidecar.wait_events("execution.completed", 2)
        if isinstance(e, ExecutionCompleted)
    ]  # fmt: skip
    by_variant = {e.variant: e for e in executions}
    assert len(executions) == 2
    assert by_variant["v2"].status == "error"
    assert by_variant["v2"].error_kind == "template_render_failed"
    assert by_variant["v2"].fell_back_to == "v1"
    assert by_variant["v1"].status == "ok" and by_variant["v1"].execution_id == body["id"]
    assert by_variant["v1"].routing is not None
    assert by_variant["v1"].routing.fallback_from == "v2"


async def test_admin_refuses_an_optional_variable_used_where_it_cannot_be_left_out(
    make_sidecar: MakeSidecar,
) -> None:
    sidecar = await make_sidecar(prompts=PROMPTS)
    unguarded = "Count to {{ n + 1 }}"
    async with aiohttp.ClientSession() as session:
        async with session.post(
            sidecar.url + "/admin/prompts/count/variants",
            json={"name": "v9", "model": "fake/model-a", "template": unguarded},
        ) as resp:
            assert resp.status == 400
            error = openai_error(await resp.json())
        assert "'n' is optional without a default, and arithmetic (+)" in error["message"]
        definition = {
            "id": "tally",
            "variables": [{"name": "n", "type": "integer"}],
            "variants": [{"name": "v1", "model": "fake/model-a", "template": unguarded}],
        }
        async with session.put(sidecar.url + "/admin/prompts/tally", json=definition) as resp:
            assert resp.status == 400
            details = (await resp.json())["error"]["details"]
    assert [d["field"] for d in details] == ["variants[0].template"]
    assert "guard it ({% if n %})" in details[0]["message"]
    assert not await sidecar.events("prompt.registered")
    registered = await sidecar.events("variant.registered")
    assert all(getattr(e, "variant", None) != "v9" for e in registered)


# (name, body, recorded): what a caller can send wrong; recorded: one error execution.
BAD_INPUT: list[tuple[str, dict[str, Any] | bytes, bool]] = [
    ("promptlab is a string", routed("greet", "name=x"), False),
    ("promptlab is a number", routed("greet", 5), False),
    ("promptlab is an array", routed("greet", [{"variables": {"name": "x"}}]), False),
    ("variables is a string", routed("greet", {"variables": "name=x"}), False),
    ("variables is an array", routed("greet", {"variables": ["x"]}), False),
    ("variables is a number", routed("greet", {"variables": 3}), False),
    ("subject is an object", routed("greet", {"variables": {"name": "x"}, "subject": {}}), False),
    ("subject is an array", routed("greet", {"variables": {"name": "x"}, "subject": ["u"]}), False),
    ("subject is a boolean", routed("greet", {"variables": {"name": "x"}, "subject": True}), False),
    ("subject is a float", routed("greet", {"variables": {"name": "x"}, "subject": 1.5}), False),
    ("a number for a string", routed("greet", {"variables": {"name": 5}}), False),
    ("a list for a string", routed("greet", {"variables": {"name": ["a", "b"]}}), False),
    ("an object for a string", routed("greet", {"variables": {"name": {"a": 1}}}), False),
    ("a string for an integer", routed("heading", {"variables": {"level": "2"}}), False),
    ("a float for an integer", routed("heading", {"variables": {"level": 1.5}}), False),
    ("a boolean for a number", routed("ratio", {"variables": {"n": True}}), False),
    ("a string for an array", routed("first", {"variables": {"items": "abc"}}), False),
    ("a number beyond 64 bits", routed("heading", {"variables": {"level": 10**30}}), False),
    (
        "a float beyond 2**53 for an integer",
        routed("heading", {"variables": {"level": 1e30}}),
        False,
    ),
    ("NaN for a number", ratio(b"NaN"), False),
    ("Infinity for a number", ratio(b"-Infinity"), False),
    ("a number beyond a double", ratio(b"1e400"), False),
    ("an undeclared variable", routed("greet", {"variables": {"name": "x", "nme": "y"}}), False),
    ("a required variable missing", routed("greet", {"variables": {}}), False),
    ("a NUL in a value", routed("greet", {"variables": {"name": "a\x00b"}}), False),
    ("messages is an object", routed("greet", {"variables": {"name": "x"}}, messages={}), False),
    ("an empty list for `first`", routed("first", {"variables": {"items": []}}), True),
    ("the same, streamed", routed("first", {"variables": {"items": []}}, stream=True), True),
    ("a key the object lacks", routed("lookup", {"variables": {"obj": {"nom": "x"}}}), True),
    ("a division by zero", routed("ratio", {"variables": {"n": 0}}), True),
    ("mixed types to sort", routed("sorted", {"variables": {"tags": [1, "a"]}}), True),
    ("a huge repetition", routed("heading", {"variables": {"level": 2**62}}), True),
    ("a repetition of a billion", routed("heading", {"variables": {"level": 10**9}}), True),
    ("a huge power", routed("power", {"variables": {"n": 2**40}}), True),
]


@pytest.mark.parametrize(
    ("body", "recorded"), [case[1:] for case in BAD_INPUT], ids=[case[0] for case in BAD_INPUT]
)
async def test_bad_input_on_the_routed_path_is_a_4xx_never_a_500(
    make_sidecar: MakeSidecar, body: dict[str, Any] | bytes, recorded: bool
) -> None:
    sidecar = await make_sidecar(prompts=PROMPTS)
    status, headers, answer = await post(sidecar.url + CHAT, body)
    assert 400 <= status < 500, (status, answer)
    error = openai_error(answer)
    assert error["type"] == "invalid_request_error"
    assert sidecar.upstream.requests == []
    # The sidecar keeps serving, and the good call's event follows any refused one's.
    status, _, _ = await post(sidecar.url + CHAT, routed("greet", {"variables": {"name": "A"}}))
    assert status == 200
    executions = [
        e for e in await sidecar.wait_events("execution.completed", 1 + recorded)
        if isinstance(e, ExecutionCompleted)
    ]  # fmt: skip
    failed = [e for e in executions if e.status == "error"]
    if recorded:
        assert error["code"] == "template_render_failed"
        assert [e.execution_id for e in failed] == [headers["X-Promptlab-Execution"]]
        assert failed[0].http_status == 400
    else:
        assert failed == [] and "X-Promptlab-Execution" not in headers
    assert len(executions) == 1 + recorded
