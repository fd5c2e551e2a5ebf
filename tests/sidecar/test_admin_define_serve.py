"""A prompt created through ``/admin`` on real ``promptlab serve`` processes sharing a real
nats-server: it is called, rewarded by its own ``[reward]`` rule in the learner, seen by a
``--no-learner`` replica, updated there (a new version, origin ``api`` in the history),
and still served, updated, after a restart."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from polling import until_sync
from serving import Serve, write_config

from promptlab.cli import main
from promptlab.events.embedded import NatsServerProcess

GREET = """
id = "greet"
[[variables]]
name = "name"
[[variants]]
name = "hello"
model = "simulated/alpha"
template = "Say hello to {{ name }}"
"""

FAQ: dict[str, Any] = {
    "id": "faq",
    "variables": [{"name": "question", "required": True}],
    "reward": {"feedback": "stars", "scale": [1, 5]},
    "routing": {"strategy": "fixed", "weights": {"short": 1, "long": 0}},
    "variants": [
        {"name": "short", "model": "simulated/alpha", "template": "Answer: {{ question }}"},
        {"name": "long", "model": "simulated/beta", "template": "Explain: {{ question }}"},
    ],
}

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def request(method: str, url: str, body: Any = None) -> tuple[int, Any, dict[str, str]]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with NO_PROXY.open(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read()), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), dict(exc.headers)


def ask(served: Serve) -> tuple[int, Any, dict[str, str]]:
    body = {
        "model": "promptlab/faq",
        "messages": [],
        "promptlab": {"variables": {"question": "Why?"}},
    }
    return request("POST", served.url + "/v1/chat/completions", body)


@pytest.mark.slow
def test_api_prompt_through_serve_replica_learner_and_restart(
    tmp_path: Path, nats_server: NatsServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = f"sqlite+aiosqlite:///{(tmp_path / 'learner.db').as_posix()}"
    extra = "[learner]\nsnapshot_interval_ms = 50\n"
    config_a = write_config(
        tmp_path / "a", {"greet": GREET}, nats_url=nats_server.url, storage_url=storage, extra=extra
    )
    config_b = write_config(
        tmp_path / "b", {"greet": GREET}, nats_url=nats_server.url, storage_url=storage, extra=extra
    )
    with Serve(config_a) as a:
        status, created, _ = request("PUT", a.url + "/admin/prompts/faq", FAQ)
        assert status == 201, created
        status, answer, headers = ask(a)
        assert status == 200 and headers["X-Promptlab-Variant"] == "short", answer
        status, fb, _ = request(
            "POST",
            a.url + "/v1/feedback",
            {"execution_id": answer["id"], "name": "stars", "value": 5},
        )
        assert status == 200, fb

        def rewarded_by_its_own_rule() -> bool:  # 5 on 1..5 stars: 1.0 (the default rule refuses 5)
            shown = request("GET", a.url + "/admin/prompts/faq")[1]
            stats = shown["variants"][0]["stats"]
            return bool(stats and stats["rewarded"] == 1 and stats["reward_mean"] == 1.0)

        until_sync(rewarded_by_its_own_rule)

        with Serve(config_b, learner=False) as b:
            assert ask(b)[0] == 200  # loaded from KV before it served
            changed = json.loads(json.dumps(FAQ))
            changed["variants"][0]["template"] = "Answer in one line: {{ question }}"
            status, updated, _ = request("PUT", b.url + "/admin/prompts/faq", changed)
            assert status == 200 and [c["variant"] for c in updated["changes"]["new_versions"]] == [
                "short"
            ]
            new_version = updated["variants"][0]["version"]

            def a_has_it() -> bool:
                shown = request("GET", a.url + "/admin/prompts/faq")[1]
                return bool(shown["variants"][0]["version"] == new_version)

            until_sync(a_has_it)

            def history_has_it() -> bool:
                status, body, _ = request("GET", a.url + "/admin/prompts/faq/history?variant=short")
                return status == 200 and len(body["versions"]) == 2

            until_sync(history_has_it)
            assert b.terminate() == 0
        assert a.terminate() == 0

    with Serve(config_a) as again:
        status, answer, headers = ask(again)
        assert status == 200 and headers["X-Promptlab-Variant"] == "short", answer
        shown = request("GET", again.url + "/admin/prompts/faq")[1]
        assert shown["variants"][0]["version"] == new_version and shown["source"] == "api"
        assert again.terminate() == 0

    assert main(["prompts", "history", "faq", "short", "--config", str(config_a)]) == 0
    rows = capsys.readouterr().out.splitlines()[2:]  # under the headings and their rule
    assert [(row.split()[1], row.split()[5], row.split()[7]) for row in rows] == [
        ("1", "api", "replaced"),
        ("2", "api", "active"),
    ]
