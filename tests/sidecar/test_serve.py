"""``promptlab serve`` end to end: ready line, a call, SIGTERM, exit 0, events kept."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

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
"""


def _setup(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A config keeping everything of serve's in ``tmp_path``, and a clean environment."""
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "greet.toml").write_text(PROMPT)
    config = tmp_path / "promptlab.toml"
    config.write_text(
        f'[nats]\ndata_dir = "{tmp_path}/nats"\noutbox_dir = "{tmp_path}/outbox"\n[prompts]\ndir = "{tmp_path}/prompts"\n'
        f'[storage]\nurl = "sqlite+aiosqlite:///{tmp_path}/promptlab.db"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTLAB_")}
    return config, env


def test_serve_answers_and_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    config, env = _setup(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "promptlab", "--config", str(config), "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=Path(__file__).parents[2],
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.match(
            r"promptlab serving on (http://127\.0\.0\.1:\d+/v1) \(nats: nats://127\.0\.0\.1:\d+\)",
            line,
        )
        assert match, line + (proc.stderr.read() if proc.stderr and proc.poll() is not None else "")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        body = json.dumps(
            {
                "model": "promptlab/greet",
                "messages": [],
                "promptlab": {"variables": {"name": "Ada"}},
            }
        ).encode()
        with opener.open(
            urllib.request.Request(match.group(1) + "/chat/completions", data=body), timeout=10
        ) as resp:
            answer = json.loads(resp.read())
        assert answer["system_fingerprint"] == "promptlab-simulated"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0  # generous: a loaded 2-core CI box
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            # A killed serve cannot stop the embedded server it started: do it here.
            state = tmp_path / "nats" / "server.json"
            if state.is_file():
                with contextlib.suppress(OSError, ValueError, KeyError):
                    os.kill(int(json.loads(state.read_text())["pid"]), signal.SIGTERM)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def test_serve_with_workers_shares_one_port_and_stops_cleanly(tmp_path: Path) -> None:
    config, env = _setup(tmp_path)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "promptlab",
            "--config",
            str(config),
            "serve",
            "--workers",
            "2",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=Path(__file__).parents[2],
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"promptlab serving on http://127.0.0.1:{port}/v1" in line and "2 workers" in line, (
            line
        )
        workers = [
            c for c in _children(proc.pid) if "serve" in Path(f"/proc/{c}/cmdline").read_text()
        ]
        assert len(workers) >= 2
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        body = json.dumps(
            {
                "model": "promptlab/greet",
                "messages": [],
                "promptlab": {"variables": {"name": "Ada"}},
            }
        ).encode()
        for _ in range(20):
            with opener.open(
                urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body),
                timeout=10,
            ) as resp:
                assert json.loads(resp.read())["system_fingerprint"] == "promptlab-simulated"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert all(
            not Path(f"/proc/{w}").exists()
            or "zombie" in Path(f"/proc/{w}/status").read_text().lower()
            for w in workers
        )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
