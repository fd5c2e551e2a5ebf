"""Every code example in README.md runs.

* ``toml`` blocks load: prompt files through the prompt kernel, settings through
  ``load_settings``;
* ``python`` blocks run against a real ``promptlab serve`` (embedded NATS, learner) whose
  ``openai`` provider is a real fake upstream on loopback;
* ``sh`` blocks run line by line against that same server, except ``make`` targets (CI
  runs those itself), ``export`` (applied to the environment) and the long-running or
  interactive ``promptlab serve`` / ``promptlab tui`` (the server here *is* serve).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fake_upstream import FakeUpstream
from serving import Serve

from promptlab.prompts import load_prompt_file
from promptlab.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
BLOCK = re.compile(r"^( *)```(\w+)\n(.*?)^\1```", re.S | re.M)
SKIP_PREFIXES = ("make ", "promptlab serve", "promptlab tui")


def blocks(lang: str) -> list[str]:
    out = []
    for indent, kind, body in BLOCK.findall(README):
        if kind == lang:
            out.append("\n".join(line[len(indent) :] for line in body.splitlines()))
    return out


def shell_lines() -> list[str]:
    lines = []
    for block in blocks("sh"):
        for line in block.splitlines():
            command = re.split(r"\s{2,}#", line)[0].strip()
            if command and not command.startswith("#"):
                lines.append(command)
    return lines


def test_readme_starts_with_the_two_setup_commands() -> None:
    first = blocks("sh")[0].splitlines()
    assert [line.split("#")[0].strip() for line in first] == ["make demo", "make test"]


@pytest.mark.parametrize(
    "body", [b for b in blocks("toml") if "[[variants]]" in b], ids=lambda b: b.split("\n")[0]
)
def test_prompt_file_examples_load(tmp_path: Path, body: str) -> None:
    path = tmp_path / "example.toml"
    path.write_text(body)
    spec = load_prompt_file(path)
    assert spec.variants and spec.champion.name


def _experiment_file(body: str) -> bool:
    return body.startswith("# experiment file")


@pytest.mark.parametrize(
    "body", [b for b in blocks("toml") if _experiment_file(b)], ids=lambda b: b.split("\n")[1]
)
def test_experiment_file_examples_parse(body: str) -> None:
    import tomllib

    from promptlab.lab.experiment import parse_experiment

    spec = parse_experiment(tomllib.loads(body))
    if "[evolution]" in body:  # the evolution section's excerpt
        assert spec.evolution.mutator
    else:
        assert spec.evaluators and spec.constraint_list()


@pytest.mark.parametrize(
    "body",
    [b for b in blocks("toml") if "[[variants]]" not in b and not _experiment_file(b)],
    ids=lambda b: b.split("\n")[0],
)
def test_config_examples_load(tmp_path: Path, body: str) -> None:
    path = tmp_path / "promptlab.toml"
    path.write_text(body)
    settings = load_settings(path)
    assert settings.server.port == 8787


@dataclass
class Served:
    port: int
    cwd: Path
    env: dict[str, str]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    upstream = FakeUpstream()
    await upstream.start()
    shutil.copytree(ROOT / "config", tmp_path / "config")
    port = _free_port()
    bin_dir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTLAB_")}
    env.update(
        {
            "PATH": bin_dir + os.pathsep + env.get("PATH", ""),
            "OPENAI_API_KEY": "sk-readme-test-key",
            "PROMPTLAB_PROVIDERS__OPENAI__API_BASE": upstream.base_url,
            "PROMPTLAB_SERVER__PORT": str(port),
            "PROMPTLAB_LEARNER__SNAPSHOT_INTERVAL_MS": "50",
        }
    )
    sidecar = await asyncio.to_thread(Serve, None, port=None, env=env, cwd=tmp_path)
    try:
        yield Served(port, tmp_path, env)
    finally:
        assert await asyncio.to_thread(sidecar.terminate, 30) == 0
        await upstream.stop()


async def _run(argv: list[str], served: Served) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=served.cwd,
        env=served.env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


async def test_python_and_shell_examples_run_against_a_live_sidecar(served: Served) -> None:
    pythons = blocks("python")
    assert pythons, "the README shows at least one Python example"
    for code in pythons:
        code = code.replace("127.0.0.1:8787", f"127.0.0.1:{served.port}")
        status, out = await _run([sys.executable, "-c", code], served)
        assert status == 0, out
        assert out.strip(), "the example prints what it got"

    ran = 0
    for line in shell_lines():
        if line.startswith(SKIP_PREFIXES):
            continue
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            served.env[name] = value
            continue
        status, out = await _run(["bash", "-c", line], served)
        assert status == 0, f"{line}\n{out}"
        ran += 1
    assert ran >= 4
