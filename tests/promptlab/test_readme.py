"""Every code example in README.md and docs/*.md runs, and every sample output is true.

* ``toml`` blocks load: prompt files through the prompt kernel, experiment files through
  the lab's parser, settings through ``load_settings``;
* ``python`` blocks run, in page order with the page's ``sh`` lines, against a real
  ``promptlab serve`` (embedded NATS, learner) whose ``openai`` provider is a real fake
  upstream on loopback; ``sh`` lines run against that same server, except ``make``
  targets (CI runs those itself), ``export`` (applied to the environment), activating
  the virtualenv (the tests run inside it) and the long-running ``promptlab serve``,
  ``promptlab tui`` and fake upstream (the server here *is* serve; the fake upstream's
  documented command has a test of its own below);
* a block that cannot run here says so on the line before it,
  ``<!-- not run: REASON -->``; a block of output says which command prints it,
  ``<!-- output of: COMMAND -->``, and the test runs that command and compares.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tomllib
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from fake_upstream import FakeUpstream
from polling import until_sync
from serving import Serve

from promptlab.prompts import load_prompt_file
from promptlab.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^( *)```(\w*)\s*$")
NOTE = re.compile(r"^\s*<!-- (not run|output of): (.+?) -->\s*$")
RUN = {"sh", "python"}
KNOWN = RUN | {"toml", "text", "json", "javascript"}
# Long-running or interactive commands, or ones CI runs itself (see the module docstring).
SKIP = ("make ", "promptlab serve", "promptlab tui", "source .venv/bin/activate")
FAKE_UPSTREAM = "python tests/support/fake_upstream.py"
# A line of a text block that looks like a command (not serve's "promptlab serving on").
COMMAND_LINE = re.compile(r"^(\$ |curl |python |promptlab (?!serving)[a-z])")
ENV_ASSIGNMENT = re.compile(r"^(?:[A-Z_][A-Z0-9_]*=\S*\s+)+")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page, with the note on the line before it."""

    page: str
    line: int
    lang: str
    body: str
    note: tuple[str, str] | None

    @property
    def runs(self) -> bool:
        return self.lang in RUN and not (self.note and self.note[0] == "not run")

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def parse(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown page (indented ones in list items too)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i, previous = [], 0, ""
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            if lines[i].strip():
                previous = lines[i]
            i += 1
            continue
        indent, lang = match.groups()
        end = next(j for j in range(i + 1, len(lines)) if lines[j].rstrip() == indent + "```")
        body = "\n".join(line[len(indent) :] for line in lines[i + 1 : end])
        note = NOTE.match(previous)
        blocks.append(
            Block(
                path.relative_to(ROOT).as_posix(),
                i + 1,
                lang,
                body,
                (note.group(1), note.group(2)) if note else None,
            )
        )
        previous, i = "", end + 1
    return blocks


BLOCKS = [block for page in PAGES for block in parse(page)]


def _ids(block: Block) -> str:
    return block.where


def shell_lines(block: Block) -> list[str]:
    """The commands of an ``sh`` block, without comments."""
    out = []
    for line in block.body.splitlines():
        command = re.split(r"\s{2,}#", line)[0].strip()
        if command and not command.startswith("#"):
            out.append(command)
    return out


def _skipped(command: str) -> bool:
    bare = ENV_ASSIGNMENT.sub("", command)
    return bare.startswith(SKIP) or bare.startswith(FAKE_UPSTREAM)


# --- the README's shape --------------------------------------------------------------


def test_readme_starts_with_the_two_setup_commands() -> None:
    first = next(b for b in BLOCKS if b.page == "README.md" and b.lang == "sh")
    assert [line.split("#")[0].strip() for line in first.body.splitlines()] == [
        "make demo",
        "make test",
    ]


def test_readme_is_short_and_says_how_to_activate_the_virtualenv() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    commands = [
        c for b in BLOCKS if b.page == "README.md" and b.lang == "sh" for c in shell_lines(b)
    ]
    assert "source .venv/bin/activate" in commands
    assert "promptlab init" in readme


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_history_in_the_docs(page: Path) -> None:
    """The docs describe the product as it is: no issue numbers, branches or design notes."""
    text = page.read_text(encoding="utf-8")
    for pattern in (r"\bissues? #?\d+", r"DESIGN\.md", r"\bbranch(es)? `", r"\bxfail"):
        assert not re.search(pattern, text, re.I), f"{page.name}: {pattern}"


def test_the_docs_use_the_shipped_min_lift() -> None:
    shipped = tomllib.loads((ROOT / "config" / "promptlab.toml").read_text())
    expected = shipped["learner"]["promotion"]["min_lift"]
    found = [
        float(m.group(1))
        for b in BLOCKS
        if b.lang == "toml"
        for m in re.finditer(r"^min_lift = ([\d.]+)", b.body, re.M)
    ]
    assert found and all(value == expected for value in found), found


# --- every block is run, loaded, compared or says why not ----------------------------


@pytest.mark.parametrize("block", BLOCKS, ids=_ids)
def test_every_block_is_checked_or_says_why_not(block: Block) -> None:
    assert block.lang in KNOWN, f"{block.where}: a code block needs a known language"
    if block.note and block.note[0] == "not run":
        assert len(block.note[1]) > 10, f"{block.where}: say why it cannot run"
        return
    assert block.lang != "javascript", f"{block.where}: mark why it is not run"
    if block.lang == "text":
        commands = [line for line in block.body.splitlines() if COMMAND_LINE.match(line)]
        assert not commands, (
            f"{block.where}: commands in a text block: run them (sh) or mark why not"
        )


def _prompt_file(body: str) -> bool:
    return "[[variants]]" in body


def _experiment_file(body: str) -> bool:
    return body.startswith("# experiment file")


# An excerpt marked "not run" is not a whole file and is not loaded.
TOMLS = [b for b in BLOCKS if b.lang == "toml" and not (b.note and b.note[0] == "not run")]


@pytest.mark.parametrize("block", [b for b in TOMLS if _prompt_file(b.body)], ids=_ids)
def test_prompt_file_examples_load(tmp_path: Path, block: Block) -> None:
    path = tmp_path / "example.toml"
    path.write_text(block.body)
    spec = load_prompt_file(path)
    assert spec.variants and spec.champion.name


@pytest.mark.parametrize("block", [b for b in TOMLS if _experiment_file(b.body)], ids=_ids)
def test_experiment_file_examples_parse(block: Block) -> None:
    from promptlab.lab.experiment import parse_experiment

    spec = parse_experiment(tomllib.loads(block.body))
    if "[evolution]" in block.body:  # the evolution section's excerpt
        assert spec.evolution.mutator
    else:
        assert spec.evaluators and spec.constraint_list()


@pytest.mark.parametrize(
    "block",
    [b for b in TOMLS if not _prompt_file(b.body) and not _experiment_file(b.body)],
    ids=_ids,
)
def test_config_examples_load(tmp_path: Path, block: Block) -> None:
    path = tmp_path / "promptlab.toml"
    path.write_text(block.body)
    settings = load_settings(path)
    assert settings.server.port == 8787


# --- sample output -------------------------------------------------------------------


@cache
def _output_of(command: str, cwd: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTLAB_")}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    result = subprocess.run(
        shlex.split(command),
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.parametrize(
    "block", [b for b in BLOCKS if b.note and b.note[0] == "output of"], ids=_ids
)
def test_sample_output_is_what_the_command_prints(
    block: Block, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The demo's summary (and any other sample marked so) matches a fresh run, line by line."""
    assert block.note is not None
    out = _output_of(block.note[1], str(tmp_path_factory.getbasetemp())).splitlines()
    sample = block.body.splitlines()
    assert sample, block.where
    starts = [i for i, line in enumerate(out) if line == sample[0]]
    assert starts, f"{block.where}: {sample[0]!r} is not in the output:\n" + "\n".join(out[-20:])
    assert out[starts[-1] : starts[-1] + len(sample)] == sample, block.where


# --- running the examples against a live sidecar -------------------------------------


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
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode()


def _local(text: str, port: int) -> str:
    return text.replace("127.0.0.1:8787", f"127.0.0.1:{port}").replace(
        "localhost:8787", f"localhost:{port}"
    )


def _runnable(page: Path) -> bool:
    blocks = [b for b in BLOCKS if b.page == page.relative_to(ROOT).as_posix() and b.runs]
    return any(b.lang == "python" or any(not _skipped(c) for c in shell_lines(b)) for b in blocks)


@pytest.mark.parametrize("page", [p for p in PAGES if _runnable(p)], ids=lambda p: p.name)
async def test_examples_run_against_a_live_sidecar(page: Path, served: Served) -> None:
    ran = 0
    for block in (b for b in BLOCKS if b.page == page.relative_to(ROOT).as_posix() and b.runs):
        if block.lang == "python":
            status, out = await _run(
                [sys.executable, "-c", _local(block.body, served.port)], served
            )
            assert status == 0, f"{block.where}\n{out}"
            assert out.strip(), f"{block.where}: the example prints what it got"
            ran += 1
            continue
        for line in shell_lines(block):
            if _skipped(line):
                continue
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").partition("=")
                served.env[name] = value
                continue
            status, out = await _run(["bash", "-c", _local(line, served.port)], served)
            assert status == 0, f"{block.where}: {line}\n{out}"
            ran += 1
    assert ran


# --- the fake upstream, as the docs start it ------------------------------------------


def _documented_fake_upstream() -> str:
    lines = {
        line
        for b in BLOCKS
        if b.lang == "sh" and b.runs
        for line in shell_lines(b)
        if line.startswith(FAKE_UPSTREAM)
    }
    assert len(lines) == 1, lines
    return lines.pop()


def _listening(port: int, proc: subprocess.Popen[bytes]) -> bool:
    assert proc.poll() is None, "the fake upstream exited"
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_the_documented_fake_upstream_serves_a_keyless_try(tmp_path: Path) -> None:
    """The README's keyless try: the fake upstream as documented, then serve against it."""
    port = _free_port()
    command = shlex.split(_documented_fake_upstream().replace("9001", str(port)))
    assert command[0] == "python"
    upstream = subprocess.Popen([sys.executable, *command[1:]], cwd=ROOT)
    try:
        until_sync(lambda: _listening(port, upstream), 30, f"the fake upstream on {port}")
        shutil.copytree(ROOT / "config", tmp_path / "config")
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("PROMPTLAB_") and k != "OPENAI_API_KEY"
        }
        env["PROMPTLAB_PROVIDERS__OPENAI__API_BASE"] = f"http://127.0.0.1:{port}/v1"
        sidecar = Serve(None, env=env, cwd=tmp_path)
        try:
            request = urllib.request.Request(
                f"{sidecar.url}/v1/chat/completions",
                data=b'{"model": "promptlab/summarize", "messages": [],'
                b' "promptlab": {"variables": {"code": "def add(a, b): return a + b"}}}',
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=30) as answer:
                body = answer.read().decode()
            assert "echo:" in body and "def add(a, b)" in body, body
        finally:
            assert sidecar.terminate(30) == 0
    finally:
        upstream.terminate()
        upstream.wait(10)
