"""Peer benchmark: promptlab against a bare aiohttp proxy and the LiteLLM proxy, same run.

Starts, each in its own process on loopback: the minimal fake upstream of
:mod:`bench.sidecar_latency`, a bare aiohttp reverse proxy (one ``ClientSession``, body
passed through: the floor of any proxy written on aiohttp), the LiteLLM proxy (installed
on first run into its own virtualenv under ``.promptlab/bench/litellm-venv``: ``pip
install 'litellm[proxy]'``), and ``promptlab serve`` (routed calls, events published to
a temporary nats-server). The same load generator drives each at 1 and 8 connections
(and 32 for the peak rate); the table shows added p50/p99 latency over the upstream
direct, req/s, and the ratios promptlab/bare and promptlab/LiteLLM.

``python -m bench.peers [--quick] [--duration S] [--repeat N] [--no-litellm] [--out FILE]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path
from typing import Any

from bench import record
from bench.sidecar_latency import (
    PROMPT,
    ROOT,
    _free_port,
    _loadavg,
    _median,
    _wait_port,
    run_load,
)

LITELLM_VENV = ROOT / ".promptlab" / "bench" / "litellm-venv"


# ---------------------------------------------------------------------- bare proxy


def bare_proxy_main(port: int, upstream_port: int) -> None:
    """A reverse proxy in a dozen lines of aiohttp: what any aiohttp proxy costs at least."""
    import uvloop
    from aiohttp import ClientSession, TCPConnector, web

    upstream = f"http://127.0.0.1:{upstream_port}/v1/chat/completions"

    async def session_ctx(app: web.Application) -> Any:
        app["session"] = ClientSession(connector=TCPConnector(limit=512))
        yield
        await app["session"].close()

    async def chat(request: web.Request) -> web.Response:
        body = await request.read()
        headers = {"Content-Type": "application/json"}
        async with request.app["session"].post(upstream, data=body, headers=headers) as resp:
            data = await resp.read()
            return web.Response(body=data, status=resp.status, content_type="application/json")

    app = web.Application()
    app.cleanup_ctx.append(session_ctx)
    app.router.add_post("/v1/chat/completions", chat)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


# ---------------------------------------------------------------------- litellm proxy


def litellm_binary() -> Path:
    """The ``litellm`` proxy command, installed into its own venv on first use."""
    binary = LITELLM_VENV / "bin" / "litellm"
    if binary.exists():
        return binary
    print(f"installing the LiteLLM proxy into {LITELLM_VENV} (first run only)...", flush=True)
    LITELLM_VENV.parent.mkdir(parents=True, exist_ok=True)
    venv.create(LITELLM_VENV, with_pip=True)
    subprocess.run(
        [str(LITELLM_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet",
         "litellm[proxy]"],
        check=True,
    )  # fmt: skip
    return binary


def start_litellm(tmpdir: Path, port: int, upstream_port: int) -> subprocess.Popen[str]:
    config = tmpdir / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: model-a\n"
        "    litellm_params:\n"
        "      model: openai/model-a\n"
        f"      api_base: http://127.0.0.1:{upstream_port}/v1\n"
        "      api_key: bench-key\n"
        "litellm_settings:\n"
        "  drop_params: true\n"
    )
    env = {
        **os.environ,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        # A loopback-only bench: no master key (the load generator sends no credentials).
        "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
    }
    return subprocess.Popen(
        [str(litellm_binary()), "--config", str(config), "--port", str(port),
         "--host", "127.0.0.1", "--num_workers", "1"],
        cwd=tmpdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip


# ---------------------------------------------------------------------- run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="2 s per measurement instead of 5")
    parser.add_argument("--duration", type=float, help="seconds per measurement")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (medians printed)")
    parser.add_argument("--no-litellm", action="store_true", help="skip the LiteLLM proxy")
    parser.add_argument("--bare-proxy", nargs=2, type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--out", metavar="FILE", help="also write the table as JSON (bench/results/peers.json)"
    )
    args = parser.parse_args()
    if args.bare_proxy:
        bare_proxy_main(*args.bare_proxy)
        return
    duration = args.duration or (2.0 if args.quick else 5.0)
    warmup = 0.5 if args.quick else 1.0
    repeat = max(1, args.repeat)

    from promptlab.events.embedded import NatsServerProcess

    load_before = _loadavg()
    print(f"load average before: {load_before}", flush=True)
    procs: list[subprocess.Popen[str]] = []
    ports: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="promptlab-peers-") as tmp:
        tmpdir = Path(tmp)
        nats = NatsServerProcess(tmpdir / "nats")
        nats.start()
        try:
            upstream = _free_port()
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "bench.sidecar_latency", "--upstream", str(upstream)],
                    cwd=ROOT,
                    text=True,
                )
            )
            ports["bare aiohttp proxy"] = _free_port()
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "bench.peers", "--bare-proxy",
                     str(ports["bare aiohttp proxy"]), str(upstream)],
                    cwd=ROOT,
                    text=True,
                )
            )  # fmt: skip
            if not args.no_litellm:
                ports["LiteLLM proxy"] = _free_port()
                procs.append(start_litellm(tmpdir, ports["LiteLLM proxy"], upstream))
            ports["promptlab (routed)"] = _free_port()
            (tmpdir / "prompts").mkdir()
            (tmpdir / "prompts" / "bench.toml").write_text(PROMPT)
            config = tmpdir / "promptlab.toml"
            config.write_text(
                f'[nats]\nurl = "{nats.url}"\noutbox_dir = "{tmpdir}/outbox"\n'
                f'[prompts]\ndir = "{tmpdir}/prompts"\n'
                f'[providers.fake]\nkind = "openai"\napi_base = "http://127.0.0.1:{upstream}/v1"\nmax_retries = 0\n'
            )
            env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTLAB_")}
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "promptlab", "--config", str(config), "serve",
                     "--no-learner", "--port", str(ports["promptlab (routed)"])],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    text=True,
                )
            )  # fmt: skip
            _wait_port(upstream)
            for port in ports.values():
                _wait_port(port, timeout=120.0)  # the LiteLLM proxy takes a while to start
            rounds: list[dict[str, Any]] = []
            for index in range(repeat):
                row: dict[str, Any] = {}
                for conns in (1, 8, 32):
                    row[f"direct{conns}"] = run_load(upstream, "direct", conns, duration, warmup)
                    for name, port in ports.items():
                        target = "routed" if name.startswith("promptlab") else "direct"
                        row[f"{name}{conns}"] = run_load(port, target, conns, duration, warmup)
                rounds.append(row)
                print(f"round {index + 1}/{repeat} done (load {_loadavg()})", flush=True)
        finally:
            for proc in reversed(procs):
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
            nats.stop()

    def med(key: str, field: str) -> float:
        return _median([r[key][field] for r in rounds])

    def added(name: str, conns: int, field: str) -> float:
        return _median([r[f"{name}{conns}"][field] - r[f"direct{conns}"][field] for r in rounds])

    print(
        f"\nmedians of {repeat} rounds, {duration:g} s each, same fake upstream and load generator"
    )
    print(
        f"{'':<20} {'added p50@1':>12} {'added p99@1':>12} {'added p50@8':>12} {'added p99@8':>12}"
        f" {'req/s@8':>9} {'req/s@32':>9} {'errors':>6}"
    )
    print(
        f"{'upstream direct':<20} {med('direct1', 'p50_ms'):>10.3f}ms {med('direct1', 'p99_ms'):>10.3f}ms"
        f" {med('direct8', 'p50_ms'):>10.3f}ms {med('direct8', 'p99_ms'):>10.3f}ms"
        f" {med('direct8', 'rps'):>9.0f} {med('direct32', 'rps'):>9.0f}   (absolute, not added)"
    )
    for name in ports:
        errors = sum(r[f"{name}{c}"]["errors"] for r in rounds for c in (1, 8, 32))
        print(
            f"{name:<20} {added(name, 1, 'p50_ms'):>10.3f}ms {added(name, 1, 'p99_ms'):>10.3f}ms"
            f" {added(name, 8, 'p50_ms'):>10.3f}ms {added(name, 8, 'p99_ms'):>10.3f}ms"
            f" {med(f'{name}8', 'rps'):>9.0f} {med(f'{name}32', 'rps'):>9.0f} {errors:>6}"
        )
    ours = "promptlab (routed)"
    bare = "bare aiohttp proxy"
    peak = max(med(f"{ours}8", "rps"), med(f"{ours}32", "rps"))
    print(
        f"\npromptlab p99@8 / bare aiohttp proxy p99@8: "
        f"{med(f'{ours}8', 'p99_ms') / med(f'{bare}8', 'p99_ms'):.2f}x (target <= 1.3x)"
    )
    print(f"promptlab peak: {peak:.0f} req/s (target >= 3000)")
    if "LiteLLM proxy" in ports:
        theirs = max(med("LiteLLM proxy8", "rps"), med("LiteLLM proxy32", "rps"))
        print(f"promptlab / LiteLLM proxy req/s: {peak / max(theirs, 1e-9):.1f}x (target >= 25x)")
    print(f"load average after: {_loadavg()} (all processes share this box's cores)")
    if args.out:
        table = {
            "upstream direct": {
                "added_p50_1": med("direct1", "p50_ms"),
                "added_p99_1": med("direct1", "p99_ms"),
                "added_p50_8": med("direct8", "p50_ms"),
                "added_p99_8": med("direct8", "p99_ms"),
                "rps_8": med("direct8", "rps"),
                "rps_32": med("direct32", "rps"),
            }
        }
        for name in ports:
            table[name] = {
                "added_p50_1": added(name, 1, "p50_ms"),
                "added_p99_1": added(name, 1, "p99_ms"),
                "added_p50_8": added(name, 8, "p50_ms"),
                "added_p99_8": added(name, 8, "p99_ms"),
                "rps_8": med(f"{name}8", "rps"),
                "rps_32": med(f"{name}32", "rps"),
            }
        data = {"repeat": repeat, "duration_s": duration, "rows": table}
        record.write(args.out, "bench.peers", sys.argv[1:], data, load_before)


if __name__ == "__main__":
    main()
