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
