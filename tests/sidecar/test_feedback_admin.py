"""Feedback, the admin API, probes and metrics."""

from __future__ import annotations

from typing import Any

import aiohttp
import prom
import pytest
from conftest import MakeSidecar

from promptlab.events.models import (
    FeedbackReceived,
    LifecycleCommand,
    PauseCommand,
    PromoteCommand,
    RollbackCommand,
    VariantRegistered,
)
from promptlab.events.snapshots import StatsSnapshot, VariantStats


async def call(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, json=body, headers=headers) as resp,
    ):
        return resp.status, await (
            resp.json() if resp.content_type == "application/json" else resp.text()
        )


async def test_feedback_publishes_feedback_received(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar()
    status, body = await call(
        "POST",
        sidecar.url + "/v1/feedback",
        {"execution_id": "abc", "name": "thumbs_up", "value": True},
    )
    assert status == 202 and body["execution_id"] == "abc"  # not served here: pending
    status, _ = await call(
        "POST",
        sidecar.url + "/v1/feedback",
        {"execution_id": "abc", "name": "score", "value": 0.5, "comment": "ok"},
    )
    assert status == 202
    events = await sidecar.wait_events("feedback.received", 2)
    assert [(e.name, e.value) for e in events if isinstance(e, FeedbackReceived)] == [
        ("thumbs_up", True),
        ("score", 0.5),
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"execution_id": "abc", "name": "", "value": 1},
        {"execution_id": "abc", "name": "x", "value": "good"},
        {"execution_id": "abc", "name": "x"},
        {"name": "x", "value": 1},
        [1],
    ],
)
async def test_invalid_feedback_is_400(make_sidecar: MakeSidecar, body: Any) -> None:
    sidecar = await make_sidecar(bus="memory")
    status, answer = await call("POST", sidecar.url + "/v1/feedback", body)
    assert status == 400 and "error" in answer


async def test_admin_promote_rollback_pause_publish_commands(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar()
    admin = sidecar.url + "/admin/prompts/summarize"
    status, body = await call(
        "POST", admin + "/promote", {"variant": "v2", "reason": "looks better"}
    )
    assert status == 202 and body["type"] == "command.promote"
    promote_id = body["command_id"]
    assert (await call("POST", admin + "/rollback"))[0] == 202
    assert (await call("POST", admin + "/pause"))[0] == 202
    assert (await call("POST", admin + "/resume"))[0] == 202
    assert (await call("POST", admin + "/promote", {"variant": "zzz"}))[0] == 400
    assert (await call("POST", sidecar.url + "/admin/prompts/nope/rollback"))[0] == 404
    commands = [e for e in await sidecar.events() if e.type.startswith("command.")]  # type: ignore[attr-defined]
    assert (
        isinstance(commands[0], PromoteCommand)
        and commands[0].event_id == promote_id
        and commands[0].variant == "v2"
    )
    assert isinstance(commands[1], RollbackCommand)
    assert isinstance(commands[2], PauseCommand) and commands[2].paused
    assert isinstance(commands[3], PauseCommand) and not commands[3].paused


async def test_admin_lifecycle_publishes_a_command_with_who_and_why(
    make_sidecar: MakeSidecar,
) -> None:
    sidecar = await make_sidecar()
    url = sidecar.url + "/admin/prompts/summarize/variants/v2/lifecycle"
    body = {"status": "deprecated", "reason": "too slow", "actor": "alice"}
    status, answer = await call("POST", url, body)
    assert status == 202 and answer["type"] == "command.lifecycle"
    assert (await call("POST", url, {"status": "draft"}))[0] == 400  # files only
    assert (await call("POST", url, {"status": "gone"}))[0] == 400
    assert (await call("POST", url, {"status": "archived", "actor": 7}))[0] == 400
    missing = sidecar.url + "/admin/prompts/summarize/variants/zzz/lifecycle"
    assert (await call("POST", missing, {"status": "archived"}))[0] == 404
    commands = [e for e in await sidecar.events() if isinstance(e, LifecycleCommand)]
    assert [(c.event_id, c.variant, c.status, c.actor, c.reason) for c in commands] == [
        (answer["command_id"], "v2", "deprecated", "alice", "too slow")
    ]


async def test_admin_registers_a_variant_and_routes_to_it(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar()
    admin = sidecar.url + "/admin/prompts/summarize"
    status, body = await call(
        "POST",
        admin + "/variants",
        {"name": "v3", "model": "fake/model-c", "template": "Explain {{ code }}"},
    )
    assert status == 201 and body["origin"] == "api"
    status, body = await call(
        "POST",
        admin + "/variants",
        {"name": "v4", "model": "fake/model-c", "template": "Explain {{ undeclared }}"},
    )
    assert status == 400 and "undeclared" in body["error"]["message"]
    status, body = await call(
        "POST", admin + "/variants", {"name": "v5", "model": "nowhere/model", "template": "x"}
    )
    assert status == 400
    registered = [
        e for e in await sidecar.events("variant.registered") if isinstance(e, VariantRegistered)
    ]
    assert [(e.variant, e.origin) for e in registered][-1] == ("v3", "api")
    assert {e.variant for e in registered if e.origin == "config"} >= {"v1", "v2"}
    status, listing = await call("GET", sidecar.url + "/admin/prompts")
    [summary] = [p for p in listing["data"] if p["id"] == "summarize"]
    assert [v["name"] for v in summary["variants"]] == ["v1", "v2", "v3"]
    assert summary["champion"] == "v1" and summary["variants"][2]["traffic_share"] > 0


async def test_admin_shows_stats_snapshot(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar()
    stats = StatsSnapshot(
        prompt_id="summarize",
        version=3,
        champion="v1",
        variants=[VariantStats(variant="v1", status="champion", executions=42)],
    )
    await sidecar.bus.kv_put("promptlab_stats", "summarize", stats.encode())
    status, body = await call("GET", sidecar.url + "/admin/prompts/summarize")
    assert (
        status == 200
        and body["variants"][0]["stats"]["executions"] == 42
        and body["stats"]["version"] == 3
    )


async def test_admin_keys(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar(
        bus="memory", server={"admin_keys": ["admin-secret"], "api_keys": ["client-key"]}
    )
    url = sidecar.url + "/admin/prompts"
    assert (await call("GET", url))[0] == 401
    assert (await call("GET", url, headers={"Authorization": "Bearer client-key"}))[0] == 403
    assert (await call("GET", url, headers={"Authorization": "Bearer admin-secret"}))[0] == 200


async def test_probes_and_metrics(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar()
    assert (await call("GET", sidecar.url + "/healthz"))[0] == 200
    status, body = await call("GET", sidecar.url + "/readyz")
    assert status == 200 and body["checks"] == {
        "events": "ok",
        "publisher": "running",
        "prompts": "ok",
    }
    await sidecar.client().chat.completions.create(
        model="promptlab/summarize",
        messages=[],
        extra_body={"promptlab": {"variables": {"code": "x"}}},
    )
    status, text = await call("GET", sidecar.url + "/metrics")
    assert status == 200
    labels = {"prompt": "summarize", "variant": "v1"}
    assert prom.value(text, "promptlab_calls_total", **labels, status="ok") == 1
    assert prom.value(text, "promptlab_latency_seconds_count", **labels) == 1
    assert prom.value(text, "promptlab_tokens_total", **labels, direction="input") == 10


async def test_admin_re_registering_a_name_is_idempotent_or_409_unless_replace(
    make_sidecar: MakeSidecar,
) -> None:
    sidecar = await make_sidecar(bus="memory")
    url = sidecar.url + "/admin/prompts/summarize/variants"
    body = {"name": "v3", "model": "fake/model-c", "template": "Explain {{ code }}"}
    status, first = await call("POST", url, body)
    assert status == 201
    status, again = await call("POST", url, body)
    assert status == 200 and again["version"] == first["version"]  # same body: same variant
    changed = {**body, "template": "Explain briefly {{ code }}"}
    status, refused = await call("POST", url, changed)
    assert status == 409 and '"replace": true' in refused["error"]["message"]
    status, replaced = await call("POST", url, {**changed, "replace": True})
    assert status == 201 and replaced["replaced_version"] == first["version"]
    assert replaced["version"] != first["version"]
    # the config champion can be replaced too, and stays the champion
    status, _ = await call(
        "POST", url, {"name": "v1", "model": "fake/model-a", "template": "Sum up: {{ code }}"}
    )
    assert status == 409
    status, _ = await call(
        "POST",
        url,
        {"name": "v1", "model": "fake/model-a", "template": "Sum up: {{ code }}", "replace": True},
    )
    assert status == 201
    v3 = [
        e.version
        for e in await sidecar.events("variant.registered")
        if isinstance(e, VariantRegistered) and e.variant == "v3"
    ]
    assert v3 == [first["version"], replaced["version"]]  # the idempotent call published nothing
    status, listing = await call("GET", sidecar.url + "/admin/prompts/summarize")
    assert listing["champion"] == "v1"
