"""Defining whole prompts and variants through ``/admin`` (real sidecars on free ports,
real nats-server): validation naming every problem, create/update semantics, replicas,
a restart, a prompt file's precedence, archived variants hidden unless ``?all=1``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from conftest import MakeSidecar
from polling import until
from test_feedback_admin import call

from promptlab.cli import main
from promptlab.events.embedded import NatsServerProcess
from promptlab.events.models import PromptRegistered, VariantRegistered
from promptlab.events.snapshots import ArmPosterior, RoutingSnapshot
from promptlab.events.subjects import Bucket


def faq(**changes: Any) -> dict[str, Any]:
    """A prompt in the prompt file's shape, on the fake upstream."""
    body: dict[str, Any] = {
        "id": "faq",
        "description": "Answer a product question",
        "variables": [{"name": "question", "required": True, "max_length": 200}],
        "reward": {"feedback": "stars", "scale": [1, 5]},
        "variants": [
            {"name": "plain", "model": "fake/model-a", "template": "Answer: {{ question }}"},
            {
                "name": "kind",
                "model": "fake/model-b",
                "system": "You are kind.",
                "template": "Kindly answer: {{ question }}",
            },
        ],
    }
    body.update(changes)
    return body


async def ask(url: str, question: str = "Where is my order?") -> tuple[int, Any]:
    return await call(
        "POST",
        url + "/v1/chat/completions",
        {
            "model": "promptlab/faq",
            "messages": [],
            "promptlab": {"variables": {"question": question}},
        },
    )


async def test_every_problem_of_a_body_in_one_400(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar()
    body = faq(
        reward={"feedback": "stars", "scale": [5, 1]},
        colour="blue",
        variants=[
            {"name": "plain", "model": "nowhere/model", "template": "Answer: {{ question }}"},
            {"name": "kind", "model": "fake/model-b", "template": "Hi {{ nobody }}",
             "params": {"temprature": 0.2}},
        ],
    )  # fmt: skip
    status, answer = await call("PUT", sidecar.url + "/admin/prompts/faq", body)
    assert status == 400, answer
    error = answer["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "invalid_prompt"
    fields = [d["field"] for d in error["details"]]
    assert set(fields) == {
        "reward.scale",
        "colour",
        "variants[0].model",
        "variants[1].params.temprature",
        "variants[1].template",  # the undeclared {{ nobody }}, with the other problems
    }, error["details"]
    for field in fields:
        assert field in error["message"]
    assert "did you mean 'temperature'" in error["message"]
    assert "provider 'nowhere' is not configured" in error["message"]
    # alone, the undeclared variable is reported once, in the same words
    fixed = faq(variants=[{"name": "kind", "model": "fake/model-b", "template": "Hi {{ nobody }}"}])
    status, answer = await call("PUT", sidecar.url + "/admin/prompts/faq", fixed)
    assert status == 400 and answer["error"]["details"] == [
        {
            "field": "variants[0].template",
            "message": "uses undeclared variable 'nobody'; declare it under [[variables]]",
        }
    ]
    assert not await sidecar.events("prompt.registered")
    assert (await call("GET", sidecar.url + "/admin/prompts/faq"))[0] == 404


async def test_an_embedding_model_is_checked_when_a_prompt_is_registered(
    make_sidecar: MakeSidecar,
) -> None:
    sidecar = await make_sidecar(bus="memory")
    demos = {"pool": "production", "embedding_model": "nowhere/e"}
    variant = {"name": "near", "model": "fake/model-a", "template": "Q: {{ question }}"}
    status, answer = await call(
        "PUT", sidecar.url + "/admin/prompts/faq", faq(variants=[{**variant, "demos": demos}])
    )
    assert status == 400, answer
    [detail] = answer["error"]["details"]
    assert detail["field"] == "variants[0].demos.embedding_model"
    assert "provider 'nowhere' is not configured" in detail["message"]
    shapeless = {**variant, "demos": {"embedding_model": "text-embedding-3-small"}}
    status, answer = await call(
        "PUT", sidecar.url + "/admin/prompts/faq", faq(variants=[shapeless])
    )
    assert status == 400 and "not a 'provider/model' name" in answer["error"]["message"]
    good = {**variant, "demos": {**demos, "embedding_model": "fake/embed-1"}}
    status, answer = await call("PUT", sidecar.url + "/admin/prompts/faq", faq(variants=[good]))
    assert status < 300, answer


async def test_wrong_method_shape_and_unknown_prompt_are_clear_4xx(
    make_sidecar: MakeSidecar,
) -> None:
    sidecar = await make_sidecar(bus="memory")
    admin = sidecar.url + "/admin/prompts"
    status, answer = await call("DELETE", admin + "/summarize")
    assert (
        status == 405
        and "DELETE is not allowed on /admin/prompts/summarize" in (answer["error"]["message"])
    )
    assert "PUT" in answer["error"]["message"] and answer["error"]["code"] == "method_not_allowed"
    status, answer = await call("PUT", admin + "/faq", [faq()])
    assert status == 400 and answer["error"]["message"] == "the body must be a JSON object"
    status, answer = await call("PUT", admin + "/faq", faq(id="other"))
    assert status == 400 and answer["error"]["param"] == "id"
    status, answer = await call("POST", admin, {"description": "no id"})
    assert status == 400 and answer["error"]["details"] == [{"field": "id", "message": "required"}]
    for method, path, body in (
        ("GET", "/nope", None),
        ("PATCH", "/nope", {"description": "x"}),
        ("PUT", "/nope/variants/v1", {"model": "fake/m", "template": "x"}),
        ("PATCH", "/summarize/variants/zzz", {"template": "x"}),
    ):
        status, answer = await call(method, admin + path, body)
        assert status == 404 and answer["error"]["code"] in ("unknown_prompt", "unknown_variant")
    status, answer = await call("PATCH", admin + "/summarize/variants/v1", {"colour": "x"})
    assert status == 400 and answer["error"]["details"] == [
        {"field": "colour", "message": "unknown key"}
    ]


async def test_create_is_idempotent_conflicts_and_put_makes_new_versions(
    make_sidecar: MakeSidecar,
) -> None:
    sidecar = await make_sidecar()
    admin = sidecar.url + "/admin/prompts"
    status, created = await call("POST", admin, faq())
    assert status == 201 and created["created"] and created["source"] == "api"
    assert created["champion"] == "plain" and created["changes"]["added"] == ["plain", "kind"]
    assert created["stored"] is True
    status, again = await call("POST", admin, faq())
    assert status == 200 and again["changed"] is False and again["event_ids"] == []
    assert again["version"] == created["version"]
    changed = faq()
    changed["variants"][1]["template"] = "Kindly and briefly answer: {{ question }}"
    status, refused = await call("POST", admin, changed)
    assert status == 409 and refused["error"]["code"] == "prompt_exists"
    assert "PUT /admin/prompts/faq" in refused["error"]["message"]

    status, updated = await call("PUT", admin + "/faq", changed)
    assert status == 200 and updated["changed"] and not updated["created"]
    [(name, old, new)] = [
        (v["variant"], v["from"], v["to"]) for v in updated["changes"]["new_versions"]
    ]
    assert name == "kind" and old != new and updated["changes"]["unchanged"] == ["plain"]
    status, answer = await ask(sidecar.url)
    assert status == 200, answer

    events = await sidecar.events()
    prompts = [e for e in events if isinstance(e, PromptRegistered)]
    assert [p.changes for p in prompts] == [
        ["created"],
        [f"variant kind: new version {new} (was {old})"],
    ]
    kind = [e for e in events if isinstance(e, VariantRegistered) and e.variant == "kind"]
    assert [(e.version, e.origin) for e in kind] == [(old, "api"), (new, "api")]
    stored = await sidecar.bus.kv_get(str(Bucket.PROMPTS), "faq")
    assert stored is not None and b"Kindly and briefly" in stored.value  # type: ignore[operator]


async def test_put_keeps_unnamed_variants_and_the_champion_patch_changes_one_key(
    make_sidecar: MakeSidecar,
) -> None:
    sidecar = await make_sidecar(bus="memory")
    admin = sidecar.url + "/admin/prompts/faq"
    assert (await call("PUT", admin, faq()))[0] == 201
    only_kind = faq(variants=[{**faq()["variants"][1], "champion": True}])
    status, answer = await call("PUT", admin, only_kind)
    assert status == 200 and answer["changed"] is False
    assert answer["changes"]["kept"] == ["plain"] and answer["champion"] == "plain"
    assert "promote kind" in answer["note"]
    status, answer = await call("PATCH", admin, {"reward": {"feedback": "thumbs_up"}})
    assert status == 200 and answer["changes"]["fields"] == ["reward"]
    assert [v["name"] for v in answer["variants"]] == ["plain", "kind"]
    status, answer = await call(
        "PATCH", admin + "/variants/plain", {"params": {"temperature": 0.1}}
    )
    assert status == 200 and answer["replaced_version"] != answer["version"]
    status, answer = await call("PATCH", admin + "/variants/plain", {"status": "draft"})
    assert status == 400 and answer["error"]["details"] == [
        {"field": "variants[0].status", "message": "the champion must be active, not draft"}
    ]
    plain, kind = faq()["variants"]
    drafted = faq(variants=[kind, {**plain, "template": "New: {{ question }}", "status": "draft"}])
    status, answer = await call("PUT", admin, drafted)
    assert status == 400 and "the champion stays" in answer["error"]["message"]
    assert answer["error"]["details"] == [
        {"field": "variants[1].status", "message": "the champion must be active, not draft"}
    ]
    status, answer = await call(
        "PUT", admin + "/variants/terse", {"model": "fake/model-a", "template": "{{ question }}"}
    )
    assert status == 201 and answer["origin"] == "api"
    status, shown = await call("GET", admin)
    assert [v["name"] for v in shown["variants"]] == ["plain", "kind", "terse"]
    assert shown["source"] == "api" and shown["champion"] == "plain"


async def test_a_prompt_file_owns_its_prompt_level_keys(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar(bus="memory")
    admin = sidecar.url + "/admin/prompts/summarize"
    status, current = await call("GET", admin + "?all=1")
    assert status == 200 and current["source"] == "file"
    status, answer = await call("PATCH", admin, {"reward": {"feedback": "stars"}})
    assert status == 409 and answer["error"]["code"] == "prompt_from_file"
    status, answer = await call("POST", sidecar.url + "/admin/prompts", {"id": "summarize"})
    assert status == 400  # no variants: refused before it could conflict
    status, answer = await call(
        "PATCH", admin + "/variants/v2", {"template": "In short ({{ language }}): {{ code }}"}
    )
    assert status == 200 and answer["origin"] == "api"
    assert not await sidecar.events("prompt.registered")  # the file's prompt: variants only


async def test_replicas_and_a_restart_see_prompts_defined_elsewhere(
    make_sidecar: MakeSidecar, nats_server: NatsServerProcess
) -> None:
    first = await make_sidecar(nats_url=nats_server.url)
    second = await make_sidecar(nats_url=nats_server.url)
    assert (await call("PUT", first.url + "/admin/prompts/faq", faq()))[0] == 201

    async def second_serves() -> bool:
        return (await ask(second.url))[0] == 200

    await until(second_serves)
    changed = faq()
    changed["variants"][0]["template"] = "Answer in one line: {{ question }}"
    status, updated = await call("PUT", second.url + "/admin/prompts/faq", changed)
    assert status == 200

    async def first_has_it() -> bool:
        answer = (await call("GET", first.url + "/admin/prompts/faq"))[1]
        return bool(answer["variants"][0]["version"] == updated["variants"][0]["version"])

    await until(first_has_it)
    await first.stop()
    await second.stop()
    restarted = await make_sidecar(nats_url=nats_server.url)
    status, answer = await ask(restarted.url)  # at once: loaded before it serves
    assert status == 200, answer
    sent = restarted.upstream.requests[-1].body["messages"]
    assert sent[-1]["content"] in (
        "Answer in one line: Where is my order?",
        "Kindly answer: Where is my order?",
    )
    status, shown = await call("GET", restarted.url + "/admin/prompts/faq")
    assert [v["version"] for v in shown["variants"]] == [v["version"] for v in updated["variants"]]


async def test_nothing_changes_when_nats_cannot_store_the_prompt(
    make_sidecar: MakeSidecar, nats_server: NatsServerProcess
) -> None:
    sidecar = await make_sidecar(nats_url=nats_server.url)
    await asyncio.to_thread(nats_server.stop)

    async def disconnected() -> bool:
        return not sidecar.bus.connected

    await until(disconnected)
    status, answer = await call("PUT", sidecar.url + "/admin/prompts/faq", faq())
    assert status == 503 and answer["error"]["code"] == "definitions_unavailable"
    assert (await call("GET", sidecar.url + "/admin/prompts/faq"))[0] == 404


async def test_archived_variants_hidden_unless_all(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar()
    body = faq()
    body["variants"].append(
        {"name": "old", "model": "fake/model-a", "template": "{{ question }}", "status": "archived"}
    )
    assert (await call("PUT", sidecar.url + "/admin/prompts/faq", body))[0] == 201
    admin = sidecar.url + "/admin/prompts"

    async def names(path: str) -> list[str]:
        status, answer = await call("GET", admin + path)
        assert status == 200, answer
        found = answer["data"] if "data" in answer else [answer]
        prompt = next(p for p in found if p["id"] == "faq")
        return [v["name"] for v in prompt["variants"]]

    assert await names("/faq") == ["plain", "kind"]
    assert await names("") == ["plain", "kind"]
    assert await names("/faq?all=1") == ["plain", "kind", "old"]
    assert await names("?all=true") == ["plain", "kind", "old"]
    assert (await call("GET", admin + "/faq?all=maybe"))[0] == 400
    # the learner archives "kind" (routing snapshot): hidden too; deprecated stays
    snapshot = RoutingSnapshot(
        prompt_id="faq",
        version=5,
        champion="plain",
        exploration_cap=0.2,
        arms=[
            ArmPosterior(variant="plain", alpha=1, beta=1, status="champion"),
            ArmPosterior(variant="kind", alpha=1, beta=1, lifecycle="archived"),
            ArmPosterior(variant="old", alpha=1, beta=1, lifecycle="deprecated"),
        ],
    )
    await sidecar.bus.kv_put(str(Bucket.ROUTING), "faq", snapshot.encode())

    async def archived_by_the_learner() -> bool:
        return await names("/faq") == ["plain", "old"]

    await until(archived_by_the_learner)
    status, answer = await call("GET", admin + "/faq?all=1")
    assert [(v["name"], v["status"]) for v in answer["variants"]] == [
        ("plain", "active"),
        ("kind", "archived"),
        ("old", "deprecated"),
    ]
    status, answer = await call("GET", admin + "/faq")
    assert status == 200 and answer["hidden"] == {"archived": 1}


FAQ_TOML = """
id = "faq"
[[variables]]
name = "question"
required = true
[[variants]]
name = "plain"
model = "fake/model-a"
template = "Answer: {{ question }}"
"""


async def test_prompts_apply_sends_files_whole(
    make_sidecar: MakeSidecar, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sidecar = await make_sidecar(bus="memory", server={"admin_keys": ["admin-secret"]})
    config = tmp_path / "promptlab.toml"
    config.write_text('[server]\nadmin_keys = ["admin-secret"]\n')
    path = tmp_path / "faq.toml"

    async def apply(text: str) -> tuple[int, str, str]:
        path.write_text(text)
        argv = ["prompts", "apply", str(path), "--url", sidecar.url, "--config", str(config)]
        code = await asyncio.to_thread(main, argv)
        out, err = capsys.readouterr()
        return code, out, err

    code, out, err = await apply(FAQ_TOML)
    assert code == 0 and out.startswith("faq: created (version "), err
    code, out, _ = await apply(FAQ_TOML.replace("Answer:", "Answer briefly:"))
    assert code == 0 and out.startswith("faq: updated")
    assert "variant plain: new version " in out and "evidence starts at zero" in out
    code, out, _ = await apply(FAQ_TOML.replace("Answer:", "Answer briefly:"))
    assert code == 0 and out.startswith("faq: unchanged")
    code, _, err = await apply(FAQ_TOML.replace("fake/model-a", "nowhere/model"))
    assert code == 1 and f"{path}: variants[0].model: provider 'nowhere' is not configured" in err
    code, out, err = await apply(FAQ_TOML.replace('name = "question"\n', ""))
    assert code == 2 and out == "" and "variables[0].name: required" in err
    status, shown = await call(
        "GET", sidecar.url + "/admin/prompts/faq", headers={"Authorization": "Bearer admin-secret"}
    )
    assert status == 200 and shown["variants"][0]["model"] == "fake/model-a"
