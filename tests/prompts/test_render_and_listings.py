"""`promptlab prompts render` (good and bad variables, drafts, JSON) and the listings
that hide archived variants (`prompts list|show`, `stats`; `--all` shows them), through
the real CLI entry point; the learner's lifecycle comes from a real SQLite projection."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from promptlab.cli import main
from promptlab.events.bus import Delivery
from promptlab.events.models import (
    BaseEvent,
    ExecutionCompleted,
    VariantLifecycleChanged,
    VariantRegistered,
    encode,
)
from promptlab.learner.projection.transaction import Projection
from promptlab.learner.storage.store import Store

PROMPT = """
id = "reply"
description = "Reply to a customer"
[[variables]]
name = "message"
required = true
max_length = 40
[[variables]]
name = "tone"
enum = ["warm", "formal"]
default = "warm"
[[variables]]
name = "limit"
type = "integer"
min = 1
[[variants]]
name = "v1"
model = "openai/gpt-4o-mini"
template = "Reply ({{ tone }}) to: {{ message }}"
champion = true
[[variants]]
name = "v2"
model = "openai/gpt-4o-mini"
system = "You are brief."
template = "Reply in at most {{ limit | default(2) }} sentences to: {{ message }}"
params = { temperature = 0.3, max_tokens = 100 }
status = "draft"
[[variants]]
name = "v0"
model = "simulated/alpha"
template = "Old: {{ message }}"
status = "archived"
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "reply.toml").write_text(PROMPT, encoding="utf-8")
    path = tmp_path / "promptlab.toml"
    path.write_text(
        f'[prompts]\ndir = "{prompts.as_posix()}"\n'
        f'[storage]\nurl = "sqlite+aiosqlite:///{(tmp_path / "learner.db").as_posix()}"\n'
    )
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_render_the_champion_by_default(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys,
        "prompts",
        "render",
        "reply",
        "--var",
        "message=  Where is it?",
        "--config",
        str(config),
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("reply / v1  version ") and lines[0].endswith("(active)")
    assert "model: openai/gpt-4o-mini" in lines
    assert "--- user\nReply (warm) to:   Where is it?\n" in out
    assert "input: ~" in out and "cost: ~$" in out and "(estimate, not a bill)" in out


def test_render_a_draft_as_json_with_typed_values(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "prompts", "render", "reply", "v2", "--var", "message=Hi", "--var", "limit=3",
        "--json", "--config", str(config),
    )  # fmt: skip
    assert code == 0, err
    data = json.loads(out)
    assert data["variant"] == "v2" and data["status"] == "draft"
    assert data["params"] == {"temperature": 0.3, "max_tokens": 100}
    assert data["messages"] == [
        {"role": "system", "content": "You are brief."},
        {"role": "user", "content": "Reply in at most 3 sentences to: Hi"},
    ]
    assert data["input_tokens_estimate"] > 0
    cost = data["cost_estimate"]
    assert cost["priced"] is True and cost["input_usd"] > 0 and cost["max_output_usd"] > 0


def test_render_lists_every_problem_and_exits_2(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "prompts", "render", "reply", "--var", "tone=rude", "--var", "limit=0",
        "--var", "colour=blue", "--var", "oops", "--config", str(config),
    )  # fmt: skip
    assert code == 2 and out == ""
    assert err.splitlines() == [
        "--var 'oops': expected NAME=VALUE",
        "variable 'tone': enum: 'rude' is not one of 'warm', 'formal'",
        "variable 'limit': minimum: 0 is below the minimum 1.0",
        "variable 'colour': unknown: not declared by this prompt (declared: message, tone, limit)",
        "variable 'message': required: missing, and this prompt requires it",
        "error: 5 problem(s) with the variables of 'reply'",
    ]


def test_render_unknown_prompt_or_variant(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "prompts", "render", "nope", "--config", str(config))
    assert code == 1 and "no prompt 'nope' (has: reply)" in err
    code, _, err = run(capsys, "prompts", "render", "reply", "v9", "--config", str(config))
    assert code == 1 and "has no variant 'v9' (has: v1, v2, v0)" in err


def test_list_and_show_hide_archived_unless_all(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "prompts", "list", "--config", str(config))
    assert code == 0 and out.splitlines()[2].split()[:3] == ["reply", "chat", "2"]
    assert "(1 archived variant hidden: --all shows them)" in err
    code, out, _ = run(capsys, "prompts", "list", "--all", "--config", str(config))
    assert out.splitlines()[2].split()[2] == "3"
    code, out, err = run(capsys, "prompts", "show", "reply", "--config", str(config))
    assert "variant v2  version " in out and "[draft]" in out and "variant v0" not in out
    assert "1 archived variant hidden" in err
    code, out, _ = run(
        capsys, "prompts", "show", "reply", "--all", "--json", "--config", str(config)
    )
    data = json.loads(out)
    assert [(v["name"], v["status"]) for v in data["variants"]] == [
        ("v1", "active"),
        ("v2", "draft"),
        ("v0", "archived"),
    ]


def _events() -> list[BaseEvent]:
    """The learner's view: v0 activated again, v2 (a draft in the file) archived."""
    registered = [
        VariantRegistered(prompt_id="reply", variant=name, version=f"h-{name}", model="openai/x",
                          template="x", champion=name == "v1", status=status)
        for name, status in (("v1", "active"), ("v2", "draft"), ("v0", "archived"))
    ]  # fmt: skip
    calls = [
        ExecutionCompleted(execution_id=f"e{i}", prompt_id="reply", variant=name,
                           model="openai/x", provider="openai", latency_ms=10.0)
        for i, name in enumerate(("v1", "v2", "v0"))
    ]  # fmt: skip
    moves = [
        VariantLifecycleChanged(prompt_id="reply", variant="v0", status="active", previous="archived"),
        VariantLifecycleChanged(prompt_id="reply", variant="v2", status="archived", previous="draft"),
    ]  # fmt: skip
    return [*registered, *calls, *moves]


async def _project(url: str) -> None:
    store = Store(url)
    await store.create()
    try:
        projection = Projection(store, consumer="promptlab-learner")
        await projection.load()
        events = _events()
        await projection.apply(
            [Delivery(sequence=i + 1, event=e, data=encode(e)) for i, e in enumerate(events)]
        )
    finally:
        await store.close()


def test_listings_follow_the_learners_lifecycle(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_project(f"sqlite+aiosqlite:///{(tmp_path / 'learner.db').as_posix()}"))
    code, out, _ = run(capsys, "prompts", "show", "reply", "--json", "--config", str(config))
    names = [(v["name"], v["status"]) for v in json.loads(out)["variants"]]
    assert code == 0 and names == [("v1", "active"), ("v0", "active")]
    code, out, _ = run(capsys, "stats", "--json", "--config", str(config))
    [prompt] = json.loads(out)["prompts"]
    assert code == 0 and [v["variant"] for v in prompt["variants"]] == ["v1", "v0"]
    assert prompt["hidden_archived"] == 1
    code, out, _ = run(capsys, "stats", "--all", "--json", "--config", str(config))
    [prompt] = json.loads(out)["prompts"]
    assert code == 0 and sorted((v["variant"], v["lifecycle"]) for v in prompt["variants"]) == [
        ("v0", "active"),
        ("v1", "active"),
        ("v2", "archived"),
    ]
    code, out, _ = run(capsys, "stats", "--config", str(config))
    assert "(1 archived variant hidden: --all shows them)" in out


def test_render_leaves_an_optional_variable_out_and_names_a_value_it_cannot_use(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (config.parent / "prompts" / "first.toml").write_text(
        'id = "first"\n[[variables]]\nname = "items"\ntype = "array"\nrequired = true\n'
        '[[variables]]\nname = "label"\n'
        '[[variants]]\nname = "v"\nmodel = "openai/gpt-4o-mini"\n'
        'template = "{{ label }}{% if label %}: {% endif %}{{ items | first }}"\n',
        encoding="utf-8",
    )
    code, out, err = run(
        capsys, "prompts", "render", "first", "--var", 'items=["a"]', "--config", str(config)
    )
    assert code == 0, err
    assert "--- user\na\n" in out
    code, out, err = run(
        capsys, "prompts", "render", "first", "--var", "items=[]", "--config", str(config)
    )
    assert code == 2 and out == ""
    assert err.startswith("promptlab: prompt 'first', variant 'v': undefined: ")
    assert "(user template, line 1, reading 'items')" in err
