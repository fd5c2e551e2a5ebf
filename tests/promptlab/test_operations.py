"""Running ``promptlab`` day to day: the start banner, the access log, ``--version``,
closed pipes, a port in use, and workers started from any directory."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import prom
import pytest

from promptlab.cli import version

ROOT = Path(__file__).resolve().parents[2]
CONSOLE_SCRIPT = Path(sys.executable).parent / "promptlab"
SECRET = "sk-ops-test-NEVER-LOGGED-0123456789"

PROMPT = """
id = "greet"
[[variables]]
name = "name"
type = "string"
required = true
[[variants]]
name = "hello"
model = "simulated/alpha"
template = "Say hello to {{ name }}"
champion = true
[[variants]]
name = "hi"
model = "simulated/beta"
template = "Say hi to {{ name }}"
"""


def _config(tmp_path: Path, prompts_dir: Path | None = None) -> tuple[Path, dict[str, str]]:
    prompts = prompts_dir or tmp_path / "prompt-files"
    prompts.mkdir(exist_ok=True)
    (prompts / "greet.toml").write_text(PROMPT)
    config = tmp_path / "promptlab.toml"
    config.write_text(
        f'[nats]\ndata_dir = "{tmp_path}/nats"\noutbox_dir = "{tmp_path}/outbox"\n'
        f'[prompts]\ndir = "{prompts}"\n'
        f'[storage]\nurl = "sqlite+aiosqlite:///{tmp_path}/promptlab.db"\n'
        '[providers.acme]\nkind = "openai"\napi_base = "http://127.0.0.1:9/v1"\n'
        'api_key_env = "ACME_KEY"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTLAB_")}
    env["ACME_KEY"] = SECRET
    env.pop("OPENAI_API_KEY", None)
    return config, env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _post(url: str, body: dict[str, object]) -> tuple[int, dict[str, object], dict[str, str]]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, data=json.dumps(body).encode())
    request.add_header("Authorization", "Bearer " + SECRET)
    with opener.open(request, timeout=10) as resp:
        return resp.status, json.loads(resp.read()), dict(resp.headers)


def _get(url: str) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as resp:
        return str(resp.read().decode())


@contextlib.contextmanager
def _serve(
    args: list[str], env: dict[str, str], cwd: Path, tmp_path: Path
) -> Iterator[subprocess.Popen[str]]:
    # stderr goes to a file: a pipe nobody reads while serving could fill and block it.
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [str(CONSOLE_SCRIPT), *args],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env=env,
        cwd=cwd,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            state = tmp_path / "nats" / "server.json"
            if state.is_file():
                with contextlib.suppress(OSError, ValueError, KeyError):
                    os.kill(int(json.loads(state.read_text())["pid"]), signal.SIGTERM)
        if proc.stdout is not None:
            proc.stdout.close()
        log.close()


def _read_banner(proc: subprocess.Popen[str]) -> list[str]:
    """The ready line and the banner, up to the NATS URL line that ends it."""
    assert proc.stdout is not None
    lines: list[str] = []
    while not lines or "events (NATS)" not in lines[-1]:
        line = proc.stdout.readline()
        assert line, "\n".join(lines)
        lines.append(line.rstrip("\n"))
    return lines


@pytest.mark.parametrize("command", [[], ["serve"], ["stats"], ["prompts", "list"], ["demo"]])
def test_version_everywhere(command: list[str]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "promptlab", *command, "--version"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"promptlab {version()}"


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    # About 100 kB of JSON: more than a pipe holds, so the writer meets the closed end.
    variants = "".join(
        f'[[variants]]\nname = "v{i}"\nmodel = "simulated/a"\ntemplate = """{"word " * 1900}"""\n'
        for i in range(10)
    )
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "big.toml").write_text(f'id = "big"\n{variants}')
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTLAB_")}
    env["PROMPTLAB_PROMPTS__DIR"] = str(tmp_path / "prompts")
    out = subprocess.run(
        [
            "bash",
            "-c",
            f"'{CONSOLE_SCRIPT}' prompts show big --json | head -c 10; "
            'echo " status=${PIPESTATUS[0]}"',
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )
    assert out.stdout.startswith("{")
    assert out.stderr == ""  # no traceback, no "Exception ignored ... BrokenPipeError"
    assert out.stdout.rstrip().endswith(("status=141", "status=0"))


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_in_use_is_one_clear_line(tmp_path: Path, workers: str) -> None:
    config, env = _config(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run(
            [
                str(CONSOLE_SCRIPT),
                "--config",
                str(config),
                "serve",
                "--port",
                str(port),
                "--workers",
                workers,
                "--no-learner",
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
        )
    assert out.returncode == 1
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert lines == [
        f"promptlab serve: 127.0.0.1:{port} is already in use (another promptlab serve?); "
        "stop it or choose another port with --port or PROMPTLAB_SERVER__PORT"
    ], out.stderr


def test_serve_banner_and_json_access_log(tmp_path: Path) -> None:
    config, env = _config(tmp_path)
    args = ["-v", "--log-format", "json", "--config", str(config), "serve", "--port", "0"]
    with _serve(args, env, tmp_path, tmp_path) as proc:
        lines = _read_banner(proc)
        assert lines[0].startswith("promptlab serving on http://127.0.0.1:")
        base = lines[0].split()[3].removesuffix("/v1")
        text = "\n".join(lines)
        assert "  promptlab/greet: hello (champion), hi" in text
        assert "  acme: kind openai, http://127.0.0.1:9/v1, key present: yes ($ACME_KEY)" in text
        assert (
            "  openai: kind openai, https://api.openai.com/v1, key present: no ($OPENAI_API_KEY)"
            in text
        )
        assert "  simulated: kind simulated, (offline), key present: not needed (simulated)" in text
        assert "learner: in a child process" in text
        assert f"  OpenAI-compatible API  {base}/v1" in text
        assert SECRET not in text

        status, answer, headers = _post(
            base + "/v1/chat/completions",
            {
                "model": "promptlab/greet",
                "messages": [],
                "promptlab": {"variables": {"name": "Ada Lovelace"}, "subject": "u1"},
            },
        )
        assert status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    log = (tmp_path / "serve.log").read_text()
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    access = [r for r in records if r["logger"] == "promptlab.access"]
    assert len(access) == 1, log
    [entry] = access
    assert entry["method"] == "POST" and entry["path"] == "/v1/chat/completions"
    assert entry["status"] == 200 and entry["latency_ms"] > 0
    assert entry["prompt"] == "greet"
    assert entry["variant"] == headers["X-Promptlab-Variant"]
    assert entry["execution_id"] == answer["id"] == headers["X-Promptlab-Execution"]
    # Never bodies or keys; and -v keeps third-party debug noise out.
    assert "Ada Lovelace" not in log and SECRET not in log
    assert all(r["level"] != "debug" for r in records)
    noise = [r for r in records if r["logger"].startswith(("asyncio", "aiohttp", "nats"))]
    assert noise == [], noise


def test_workers_start_from_a_directory_with_our_package_names(tmp_path: Path) -> None:
    # A project directory with folders named like our packages: workers must not import them.
    for name in ("prompts", "events", "sidecar"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise ImportError('shadowed!')\n")
    config, env = _config(tmp_path, prompts_dir=tmp_path / "prompts")
    port = _free_port()
    args = ["--config", str(config), "serve", "--workers", "2", "--port", str(port)]
    with _serve(args, env, tmp_path, tmp_path) as proc:
        lines = _read_banner(proc)
        assert "2 workers" in lines[0] and "workers: 2" in lines
        base = f"http://127.0.0.1:{port}"
        calls = 40
        for i in range(calls):
            status, _, _ = _post(
                base + "/v1/chat/completions",
                {
                    "model": "promptlab/greet",
                    "messages": [],
                    "promptlab": {"variables": {"name": f"n{i}"}},
                },
            )
            assert status == 200
        # Every scrape, whichever worker answers, counts the calls of both workers;
        # queue depth is per worker.
        deadline = time.monotonic() + 20
        while True:
            text = _get(base + "/metrics")
            total = prom.total(text, "promptlab_calls_total", prompt="greet")
            workers = {
                w
                for w in ("0", "1")
                if prom.value(text, "promptlab_event_queue_depth", worker=w) is not None
            }
            if total == calls and workers == {"0", "1"}:
                break
            assert time.monotonic() < deadline, (total, workers, text)
            time.sleep(0.1)
        for _ in range(6):
            assert prom.total(_get(base + "/metrics"), "promptlab_calls_total") == calls
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
