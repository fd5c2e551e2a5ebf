"""The admin API refuses variants that could leave the sandbox, reach another host or
break a header: 400, and nothing is published."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import MakeSidecar
from test_feedback_admin import call


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        (
            {"name": "v6", "params": {"api_base": "http://169.254.169.254/"}},
            "cannot choose where a call goes",
        ),
        ({"name": "v6", "params": {"temprature": 0.2}}, "did you mean 'temperature'"),
        ({"name": "v6", "template": "{{ code.__class__.__mro__ }}"}, "may not reach internals"),
        ({"name": "v6\n"}, "letters, digits"),
        ({"name": "v6", "model": "fake/model\r\nX-Evil: 1"}, "provider/model"),
    ],
)
async def test_admin_refuses_variants_that_could_escape_or_misroute(
    make_sidecar: MakeSidecar, variant: dict[str, Any], message: str
) -> None:
    sidecar = await make_sidecar()
    body = {"model": "fake/model-c", "template": "Explain {{ code }}", **variant}
    status, answer = await call("POST", sidecar.url + "/admin/prompts/summarize/variants", body)
    assert status == 400, answer
    assert message in answer["error"]["message"]
    registered = await sidecar.events("variant.registered")
    assert all(getattr(e, "variant", None) != "v6" for e in registered)


async def test_admin_refuses_an_evaluation_section_that_would_never_run(
    make_sidecar: MakeSidecar,
) -> None:
    sidecar = await make_sidecar()
    body = {
        "id": "judged",
        "variables": [{"name": "q"}],
        "evaluation": {"evaluators": [{"kind": "python", "function": "os:system"}]},
        "variants": [{"name": "v", "model": "fake/model-c", "template": "{{ q }}"}],
    }
    status, answer = await call("POST", sidecar.url + "/admin/prompts", body)
    assert status == 400 and answer["error"]["code"] == "section_not_allowed", answer
    assert "prompt file" in answer["error"]["message"]
    assert not await sidecar.events("prompt.registered")


async def test_admin_refuses_a_template_bomb_with_the_bound_it_breaks(
    make_sidecar: MakeSidecar,
) -> None:
    sidecar = await make_sidecar()
    bomb = (
        "{% for a in range(100000) %}{% for b in range(100000) %}{{ code }}{% endfor %}{% endfor %}"
    )
    body = {"name": "v6", "model": "fake/model-c", "template": bomb}
    status, answer = await call("POST", sidecar.url + "/admin/prompts/summarize/variants", body)
    assert status == 400, answer
    assert "breaks a rendering bound" in answer["error"]["message"]
