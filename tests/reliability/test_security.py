"""Case 21: who may use /admin, and where the sidecar listens."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from procs import Stack, call_body, http

from promptlab.sidecar.auth import KeyRing, check_admin
from promptlab.sidecar.config import ServerSettings
from promptlab.sidecar.errors import Forbidden

ADMIN_KEY = "adm-reliability-0123456789abcdef"
CLIENT_KEY = "cli-reliability-0123456789abcdef"


async def test_21_admin_auth(stack: Callable[..., Stack], figures: dict[str, Any]) -> None:
    s = stack(f'[server]\nadmin_keys = ["{ADMIN_KEY}"]\napi_keys = ["{CLIENT_KEY}"]\n')
    admin = s.url + "/admin/prompts"
    statuses = {}
    for name, auth, expected in [
        ("no key", None, 401),
        ("wrong key", "Bearer not-the-key-at-all-000000", 403),
        ("client key", f"Bearer {CLIENT_KEY}", 403),
        ("admin key minus its last character", f"Bearer {ADMIN_KEY[:-1]}", 403),
        ("admin key plus a character", f"Bearer {ADMIN_KEY}0", 403),
        ("admin key", f"Bearer {ADMIN_KEY}", 200),
    ]:
        reply = await http("GET", admin, headers={"Authorization": auth} if auth else {})
        assert reply.status == expected, (name, reply.status, reply.raw[:200])
        if expected != 200:
            assert reply.openai_error and ADMIN_KEY not in reply.raw.decode()
        statuses[name] = reply.status
    register = await http(
        "POST",
        s.url + "/admin/prompts/greet/variants",
        json_body={"name": "c", "model": "fake/model-a", "template": "Hi {{ name }}"},
        headers={"Authorization": f"Bearer {CLIENT_KEY}"},
    )
    assert register.status == 403
    no_client_key = await http("POST", s.url + "/v1/chat/completions", json_body=call_body(0))
    assert no_client_key.status == 401 and no_client_key.openai_error
    ok = await http(
        "POST",
        s.url + "/v1/chat/completions",
        json_body=call_body(0),
        headers={"Authorization": f"Bearer {CLIENT_KEY}"},
    )
    assert ok.status == 200
    assert ADMIN_KEY not in s.serve.log_text() and CLIENT_KEY not in s.serve.log_text()
    figures.update(**{k.replace(" ", "_"): v for k, v in statuses.items()})


def test_21_default_bind_is_loopback_and_admin_is_loopback_only_without_keys() -> None:
    assert ServerSettings().host == "127.0.0.1"
    open_ring = KeyRing([])
    check_admin(open_ring, None, "127.0.0.1")
    check_admin(open_ring, None, "::1")
    for peer in ("203.0.113.7", "10.0.0.2", "::ffff:203.0.113.7", "fe80::1"):
        with pytest.raises(Forbidden):
            check_admin(open_ring, None, peer)


async def test_21_serve_listens_on_loopback_by_default(stack: Callable[..., Stack]) -> None:
    s = stack()
    assert s.url.startswith("http://127.0.0.1:")


# Case 22 (no compromised litellm, no unexpected .pth file) is
# tests/promptlab/test_supply_chain.py, which also checks who owns each .pth file.
