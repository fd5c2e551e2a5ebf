"""``promptlab serve`` end to end: ready line, a call, SIGTERM, exit 0, events kept."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from serving import GREET_CALL, GREET_PROMPT, Serve, child_pids, clean_env, write_config


def test_serve_answers_and_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"greet": GREET_PROMPT})
    with Serve(config) as served:
        assert served.url.startswith("http://127.0.0.1:")
        assert served.nats_url is not None and served.nats_url.startswith("nats://127.0.0.1:")
        answer = served.post_json("/v1/chat/completions", GREET_CALL)
        assert answer["system_fingerprint"] == "promptlab-simulated"
        assert served.terminate() == 0, served.log_text()[-3000:]


def test_serve_with_workers_shares_one_port_and_stops_cleanly(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"greet": GREET_PROMPT})
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with Serve(config, args=["--workers", "2", "--port", str(port)]) as served:
        assert served.url == f"http://127.0.0.1:{port}"
        assert any("2 workers" in line for line in served.output), list(served.output)
        workers = child_pids(served.pid, b"serve")
        assert len(workers) >= 2
        for _ in range(20):
            answer = served.post_json("/v1/chat/completions", GREET_CALL)
            assert answer["system_fingerprint"] == "promptlab-simulated"
        assert served.terminate() == 0, served.log_text()[-3000:]
        assert all(
            not Path(f"/proc/{w}").exists()
            or "zombie" in Path(f"/proc/{w}/status").read_text().lower()
            for w in workers
        )


def test_serve_refuses_a_variant_whose_provider_is_not_configured(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, {"greet": GREET_PROMPT.replace("simulated/alpha", "groq/llama")}
    )
    result = subprocess.run(
        [sys.executable, "-m", "promptlab", "--config", str(config), "serve", "--port", "0"],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "variants[0].model: provider 'groq' is not configured" in result.stderr
    assert "serving on" not in result.stdout
