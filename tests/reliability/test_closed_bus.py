"""Issue 24, failures 4-8 on real processes: feedback bound to its caller, a closed bus,
a model name that cannot choose the host, admin writes that survive a SIGKILL, breeding
caps that survive a restart."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nats.aio.client
import nats.errors
from polling import until
from procs import (
    CANARY,
    KEY_ENV,
    PROMPT,
    REPO,
    Serve,
    call_body,
    clean_env,
    drive,
    http,
    promptlab_cli,
    stream_events,
    wait_projection,
    write_config,
)

from promptlab.events.models import FeedbackReceived

# --------------------------------------------------------------------------- 5: the bus


async def _refused(url: str, **options: Any) -> str:
    """The error an nats-py client gets connecting to ``url`` with ``options``."""
    client = nats.aio.client.Client()
    try:
        await client.connect(url, allow_reconnect=False, connect_timeout=2, **options)
    except nats.errors.Error as exc:
        return str(exc)
    finally:
        await client.close()
    return "connected"


def _learner_process(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """``promptlab learner`` as its own process, its output in ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "promptlab", "--config", str(config), "learner"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=clean_env(),
            cwd=REPO,
        )


def _stdout_lines(serve: Serve, until: str, limit: int = 60) -> list[str]:
    """Lines serve printed after its ready line, up to the one containing ``until``."""
    assert serve.proc.stdout is not None
    lines = []
    for _ in range(limit):
        line = serve.proc.stdout.readline()
        lines.append(line)
        if not line or until in line:
            break
    return lines


async def test_24_5_embedded_bus_refuses_strangers_and_promptlab_works(
    tmp_path: Path, upstream: Any, spawn: Callable[..., Serve], figures: dict[str, Any]
) -> None:
    config = write_config(tmp_path / "site", nats_url="embedded", upstream_base=upstream.base_url)
    data_dir = tmp_path / "site" / "nats"
    serve = spawn(config, tmp_path / "serve.log")
    state = json.loads((data_dir / "server.json").read_text())
    creds = json.loads((data_dir / "credentials.json").read_text())
    modes = {
        n: (data_dir / n).stat().st_mode & 0o777 for n in ("credentials.json", "nats-server.conf")
    }
    assert modes == {"credentials.json": 0o600, "nats-server.conf": 0o600}

    anonymous = await _refused(state["url"])
    wrong = await _refused(state["url"], user=creds["user"], password="not-the-password")
    assert "Authorization Violation" in anonymous, anonymous
    assert "Authorization Violation" in wrong, wrong

    # promptlab's own processes: the sidecar, a separate learner, the CLI.
    learner = _learner_process(config, tmp_path / "learner.log")
    try:
        outcome = await drive([serve.url], 20, concurrency=4)
        assert outcome.answered == 20, outcome
        projected = await wait_projection(config, 20)
        paused = await asyncio.to_thread(promptlab_cli, config, "pause", "greet", "--wait", "30")
    finally:
        learner.terminate()
        learner.wait(60)
    learner_out = (tmp_path / "learner.log").read_text()
    assert projected == 20, learner_out[-3000:]
    assert paused.returncode == 0, paused.stderr
    outputs = learner_out + serve.log_text() + paused.stdout + paused.stderr
    assert creds["password"] not in outputs
    figures.update(
        anonymous="refused",
        wrong_password="refused",
        projected=projected,
        cli_command="accepted",
    )


async def test_24_5_credentials_in_an_external_url_are_never_printed(
    tmp_path: Path, nats: Any, upstream: Any, spawn: Callable[..., Serve]
) -> None:
    secret = "s3cret-bus-password-0042"
    url = nats.url.replace("nats://", f"nats://promptlab:{secret}@")
    config = write_config(tmp_path / "site", nats_url=url, upstream_base=upstream.base_url)
    serve = spawn(config, tmp_path / "serve.log")
    assert secret not in serve.ready_line and nats.url in serve.ready_line
    banner = _stdout_lines(serve, "events (NATS)")
    assert any("events (NATS)" in line for line in banner), banner
    ok = await http("POST", serve.url + "/v1/chat/completions", json_body=call_body(0))
    assert ok.status == 200
    serve.terminate()
    text = "".join(banner) + serve.log_text()
    assert secret not in text


# --------------------------------------------------------------------------- 4: feedback

KEY_A = "cli-a-7d1e0c9b5a3f4e2d8c6b"
KEY_B = "cli-b-0f2e4d6c8b1a3957e5d7"
ADMIN = "adm-5c3e1a9f7d2b4e6c8a0f"


def _rating(execution_id: str, who: str) -> dict[str, Any]:
    return {"execution_id": execution_id, "name": "thumbs_up", "value": True, "comment": who}


async def _rate(url: str, key: str, execution_id: str, who: str) -> Any:
    return await http(
        "POST",
        url + "/v1/feedback",
        json_body=_rating(execution_id, who),
        headers={"Authorization": f"Bearer {key}"},
    )


async def _ratings(nats_url: str, execution_id: str, wanted: int) -> list[str]:
    """Who rated ``execution_id`` in the stream, once ``wanted`` ratings are there."""
    got: list[str] = []

    async def arrived() -> bool:
        got[:] = [
            str(e.comment)
            for e in await stream_events(nats_url)
            if isinstance(e, FeedbackReceived) and e.execution_id == execution_id
        ]
        return len(got) >= wanted

    await until(arrived, 30, f"{wanted} ratings in the stream", interval=0.1)
    return got


async def test_24_4_feedback_is_bound_to_the_key_that_made_the_call(
    tmp_path: Path, nats: Any, upstream: Any, spawn: Callable[..., Serve], figures: dict[str, Any]
) -> None:
    keys = f'[server]\napi_keys = ["{KEY_A}", "{KEY_B}"]\nadmin_keys = ["{ADMIN}"]\n'
    configs = [
        write_config(
            tmp_path / name, nats_url=nats.url, upstream_base=upstream.base_url, extra=keys
        )
        for name in ("one", "two")
    ]
    one = spawn(configs[0], tmp_path / "one.log")
    two = spawn(configs[1], tmp_path / "two.log")
    made = await http(
        "POST",
        one.url + "/v1/chat/completions",
        json_body=call_body(1),
        headers={"Authorization": f"Bearer {KEY_A}"},
    )
    assert made.status == 200
    execution_id = made.body["id"]
    unknown = "0" * len(execution_id)

    seen: dict[str, int] = {}
    for label, url in (("serving", one.url), ("other_replica", two.url)):
        stranger = await _rate(url, KEY_B, execution_id, "B")
        nobody = await _rate(url, KEY_B, unknown, "B")
        assert stranger.status == nobody.status == 404, (stranger.raw, nobody.raw)
        assert stranger.body["error"]["code"] == nobody.body["error"]["code"]
        owner = await _rate(url, KEY_A, execution_id, "A")
        admin = await _rate(url, ADMIN, execution_id, "admin")
        assert owner.status in (200, 202) and admin.status in (200, 202), (owner.raw, admin.raw)
        seen.update({f"{label}_B": stranger.status, f"{label}_A": owner.status})
    assert seen["serving_A"] == 200 and seen["other_replica_A"] == 202

    # After a restart nothing is remembered, and the binding still holds. (The ratings
    # taken so far reach the stream first: a SIGKILL may drop what is still in the
    # publisher's queue, which is not what this case is about.)
    await _ratings(nats.url, execution_id, 4)
    one.kill()
    one = spawn(configs[0], tmp_path / "one-again.log")
    assert (await _rate(one.url, KEY_B, execution_id, "B")).status == 404
    assert (await _rate(one.url, KEY_A, execution_id, "A")).status == 202

    got = await _ratings(nats.url, execution_id, 5)
    assert sorted(got) == ["A", "A", "A", "admin", "admin"], got
    for key in (KEY_A, KEY_B, ADMIN):
        assert key not in one.log_text() + two.log_text()
    figures.update(**seen, after_restart_B=404, stream_ratings_by_B=0)


# --------------------------------------------------------------------------- 6: routes


async def test_24_6_a_model_name_never_chooses_the_host(
    tmp_path: Path,
    nats: Any,
    upstream: Any,
    other_host: Any,
    spawn: Callable[..., Serve],
    figures: dict[str, Any],
) -> None:
    providers = (
        # A key and no api_base: only the routes allowed_models names.
        '[providers.lite2]\nkind = "litellm"\n'
        f'api_key_env = "{KEY_ENV}"\nallowed_models = ["openai/model-a"]\n'
        # A key and an explicit base: every model goes to that host.
        '[providers.lite3]\nkind = "litellm"\n'
        f'api_key_env = "{KEY_ENV}"\napi_base = "{upstream.base_url}"\n'
    )
    config = write_config(
        tmp_path / "site", nats_url=nats.url, upstream_base=upstream.base_url, extra=providers
    )
    # litellm's default hosts for these routes, if it ever chose one, are the other host.
    env = clean_env(
        OPENAI_API_BASE=other_host.base_url,
        OPENAI_BASE_URL=other_host.base_url,
        OLLAMA_API_BASE=other_host.base_url.removesuffix("/v1"),
    )
    serve = spawn(config, tmp_path / "serve.log", env=env)

    refused = {}
    for model in ("lite2/ollama/llama3", "lite2/openai/gpt-4o"):
        register = await http(
            "POST",
            serve.url + "/admin/prompts/greet/variants",
            json_body={"name": "c", "model": model, "template": "Hi {{ name }}"},
        )
        assert register.status == 400 and "allowed_models" in register.raw.decode(), register.raw
        call = await http(
            "POST",
            serve.url + "/v1/chat/completions",
            json_body={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        )
        assert call.status == 400 and call.body["error"]["code"] == "model_not_allowed", call.raw
        refused[model] = (register.status, call.status)

    through_base = await http(
        "POST",
        serve.url + "/v1/chat/completions",
        json_body={
            "model": "lite3/openai/model-a",
            "messages": [{"role": "user", "content": "hi"}],
        },
        timeout=120,
    )
    assert through_base.status == 200, through_base.raw[:300]
    assert len(other_host.requests) == 0
    assert upstream.requests[-1].headers.get("Authorization") == f"Bearer {CANARY}"

    bad_file = tmp_path / "bad.toml"
    bad_file.write_text(PROMPT.replace('model = "fake/model-b"', 'model = "lite2/ollama/llama3"'))
    validated = await asyncio.to_thread(promptlab_cli, config, "prompts", "validate", str(bad_file))
    assert validated.returncode == 1 and "allowed_models" in validated.stdout, validated
    figures.update(
        registration="400",
        call="400",
        explicit_base="200",
        other_host_hits=len(other_host.requests),
    )


# --------------------------------------------------------------------------- 7: durability


def _prompt_body(prompt_id: str) -> dict[str, Any]:
    data = tomllib.loads(PROMPT)
    data["id"] = prompt_id
    for variant in data["variants"]:
        variant["template"] += f" ({prompt_id})"
    return data


def _outbox_ids(outbox: Path) -> set[str]:
    ids = set()
    for segment in outbox.glob("*.jsonl*"):
        for line in segment.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                ids.add(json.loads(line)["event_id"])
    return ids


async def test_24_7_admin_writes_survive_a_sigkill_right_after_the_answer(
    tmp_path: Path, nats: Any, upstream: Any, spawn: Callable[..., Serve], figures: dict[str, Any]
) -> None:
    config = write_config(tmp_path / "site", nats_url=nats.url, upstream_base=upstream.base_url)
    rounds, in_stream, in_outbox = 8, 0, 0
    answered: list[str] = []
    for n in range(rounds):
        serve = spawn(config, tmp_path / f"serve-{n}.log")
        if n % 2 == 0:  # a whole prompt: PromptRegistered + VariantRegistered
            reply = await http(
                "POST", serve.url + "/admin/prompts", json_body=_prompt_body(f"p{n}")
            )
        else:  # one variant of a file's prompt
            reply = await http(
                "POST",
                serve.url + "/admin/prompts/greet/variants",
                json_body={
                    "name": f"v{n}",
                    "model": "fake/model-a",
                    "template": f"Hi {n} {{{{ name }}}}",
                },
            )
        serve.kill()  # SIGKILL right after the answer: no flush, no cleanup
        assert reply.status in (200, 201), reply.raw[:300]
        ids = reply.body.get("event_ids") or [reply.body["event_id"]]
        assert ids, reply.body
        held = {e.event_id for e in await stream_events(nats.url)}
        outbox = _outbox_ids(tmp_path / "site" / "outbox")
        assert all(i in held or i in outbox for i in ids), (n, ids)
        in_stream += sum(i in held for i in ids)
        in_outbox += sum(i not in held for i in ids)
        answered += ids
    events = await stream_events(nats.url)
    assert set(answered) <= {e.event_id for e in events} | _outbox_ids(tmp_path / "site" / "outbox")
    figures.update(rounds=rounds, events=len(answered), in_stream=in_stream, in_outbox=in_outbox)


async def test_24_7_a_start_republishes_what_the_kv_holds_and_the_stream_lacks(
    tmp_path: Path, nats: Any, upstream: Any, spawn: Callable[..., Serve], figures: dict[str, Any]
) -> None:
    # What an earlier version left after a SIGKILL: the KV entry, no event in the stream.
    from promptlab.events.jetstream import JetStreamBus
    from promptlab.events.models import encode
    from promptlab.events.subjects import Bucket
    from promptlab.prompts import PromptSpec, prompt_event

    spec = PromptSpec.model_validate(_prompt_body("lost"))
    lost = prompt_event(spec, actor="admin-api", changes=["created"])
    bus = JetStreamBus(url=nats.url)
    await bus.start()
    try:
        await bus.kv_put(str(Bucket.PROMPTS), "lost", encode(lost))
    finally:
        await bus.close()
    assert lost.event_id not in {e.event_id for e in await stream_events(nats.url)}

    config = write_config(tmp_path / "site", nats_url=nats.url, upstream_base=upstream.base_url)
    first = spawn(config, tmp_path / "one.log")
    second = spawn(config, tmp_path / "two.log")
    copies: list[Any] = []

    async def republished() -> bool:
        copies[:] = [e for e in await stream_events(nats.url) if e.event_id == lost.event_id]
        return bool(copies)

    await until(republished, 30, "the lost definition in the stream", interval=0.1)
    assert len(copies) == 1  # two sidecars re-published it: JetStream kept one
    models = await http("GET", first.url + "/v1/models")
    assert any(m["id"] == "promptlab/lost" for m in models.body["data"]), models.body
    second.terminate()
    figures.update(republished=len(copies))


# --------------------------------------------------------------------------- 8: breeding caps

BRED_PROMPT = (
    PROMPT.replace('"fake/model-a"', '"fake/gpt-4o-mini"').replace(
        '"fake/model-b"', '"fake/gpt-4o-mini"'
    )
    + """
[[examples]]
name = "ann"
[examples.variables]
name = "Ann"

[[examples]]
name = "bo"
[examples.variables]
name = "Bo"
"""
)


def _breeding_config(tmp_path: Path, nats_url: str, upstream_base: str, caps: str) -> Path:
    # Mutator, offline runs and judge: all on the fake upstream, with a priced model name.
    config = write_config(
        tmp_path / "site",
        nats_url=nats_url,
        upstream_base=upstream_base,
        extra=(
            '[learner.evolution]\nenabled = true\nmutator = "fake/gpt-4o-mini"\n'
            'judge = "fake/gpt-4o-mini"\nmin_champion_samples = 0\npopulation = 10\n'
            f"interval_s = 0.2\nrepeats = 1\n{caps}"
        ),
    )
    (tmp_path / "site" / "prompts" / "greet.toml").write_text(BRED_PROMPT)
    return config


async def _book(nats_url: str) -> dict[str, Any]:
    from datetime import UTC, datetime

    from promptlab.events.jetstream import JetStreamBus
    from promptlab.events.subjects import Bucket

    bus = JetStreamBus(url=nats_url)
    await bus.start()
    try:
        entry = await bus.kv_get(str(Bucket.BREEDING), datetime.now(UTC).date().isoformat())
    finally:
        await bus.close()
    return json.loads(entry.value) if entry is not None and entry.value else {}


async def _lifetimes(
    config: Path, tmp_path: Path, upstream: Any, spawn: Callable[..., Serve], count: int
) -> list[int]:
    """Upstream calls made in each of ``count`` learner lifetimes, each SIGKILLed once
    its breeder says the day's cap is reached."""
    calls = []
    for n in range(count):
        before = len(upstream.requests)
        serve = spawn(config, tmp_path / f"life-{n}.log", learner=True)
        await until(
            lambda s=serve: "daily cap reached" in s.log_text(),
            90,
            f"lifetime {n}: the breeder's cap line",
            interval=0.1,
        )
        serve.kill()
        calls.append(len(upstream.requests) - before)
    return calls


async def test_24_8_max_mutants_per_day_holds_across_restarts(
    tmp_path: Path, nats: Any, upstream: Any, spawn: Callable[..., Serve], figures: dict[str, Any]
) -> None:
    caps = "max_mutants_per_day = 2\nmax_usd_per_day = 100.0\n"
    config = _breeding_config(tmp_path, nats.url, upstream.base_url, caps)
    calls = await _lifetimes(config, tmp_path, upstream, spawn, 4)
    book = await _book(nats.url)
    assert calls[0] > 0 and calls[1:] == [0, 0, 0], calls
    assert book["mutants"] == {"greet": 2}, book
    assert book["calls"] == sum(calls), (book, calls)
    figures.update(lifetimes=4, calls_per_lifetime=calls, mutants=book["mutants"]["greet"])


async def test_24_8_max_usd_per_day_counts_every_call_and_holds_across_restarts(
    tmp_path: Path, nats: Any, upstream: Any, spawn: Callable[..., Serve], figures: dict[str, Any]
) -> None:
    caps = "max_mutants_per_day = 100\nmax_usd_per_day = 0.000001\n"
    config = _breeding_config(tmp_path, nats.url, upstream.base_url, caps)
    calls = await _lifetimes(config, tmp_path, upstream, spawn, 4)
    book = await _book(nats.url)
    assert calls[0] > 1 and calls[1:] == [0, 0, 0], calls
    # Every call the breeder made is in the book: the mutator's and the offline check's.
    assert book["calls"] == sum(calls) and book["spend_usd"] > 0, (book, calls)
    assert book["mutants"] == {"greet": 1}, book
    figures.update(lifetimes=4, calls_per_lifetime=calls, spend_usd=round(book["spend_usd"], 6))
