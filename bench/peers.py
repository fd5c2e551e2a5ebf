"""Peer benchmark: promptlab against a bare aiohttp proxy and the LiteLLM proxy, one run.

Starts, each in its own process on loopback: the minimal fake upstream of
:mod:`bench.sidecar_latency`; a bare aiohttp reverse proxy (one ``ClientSession``, the
body passed through: the floor of any proxy written on aiohttp); ``promptlab serve``
(routed calls, events published, its learner running, in a child process) and
``promptlab serve --no-learner``, each with a nats-server of its own; the routed floor of
:mod:`bench.floor_proxy` (the least a routed, recorded call does on this stack: what
``serve`` cannot beat); and the LiteLLM
proxy (installed on first run into its own virtualenv under
``.promptlab/bench/litellm-venv``: ``pip install 'litellm[proxy]'``; when it cannot be
installed or does not start, it is skipped with the reason and the rest runs).

The same load generator drives each at 1, 8 and 32 connections, round after round (the
peers take turns, so a busy box hurts them alike). Printed, and written as JSON
(``--out``, default ``bench/results/peers.json``, which ``docs/benchmarks.md`` shows):

* per peer: added p50/p99 over the upstream direct at 1 and 8 connections, req/s at 8
  and 32, and its CPU per call at 8 connections (from /proc: steadier than rates on a
  shared box; for ``serve`` the learner child's CPU is shown apart);
* the figures the hot-path targets name, from this one run: ``serve`` req/s at 8
  connections over the bare proxy's (>= 0.9), its added p50 at 1 connection over the
  bare proxy's (<= 1.3), its p99 at 8 over the bare proxy's (<= 1.3), its peak req/s
  over the LiteLLM proxy's (>= 30), what the learner costs (``serve`` req/s over
  ``serve --no-learner``'s, >= 0.9), and the RSS of ``serve`` (and of its learner)
  after ``--rss-calls`` routed calls (100,000; <= 120 MB).

``--compare LABEL=DIR`` adds ``serve`` and ``serve --no-learner`` of another checkout of
promptlab (run from DIR with DIR first on ``PYTHONPATH``): what a change bought, measured
in the same run.

``python -m bench.peers [--quick] [--duration S] [--repeat N] [--no-litellm]
[--rss-calls N] [--compare LABEL=DIR] [--out FILE | --no-out]``
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import urllib.request
import venv
from pathlib import Path
from typing import Any

from bench import record
from bench.sidecar_latency import (
    PROMPT,
    ROOT,
    _cpu_seconds,
    _free_port,
    _loadavg,
    _median,
    _rss_mb,
    _wait_port,
    run_load,
)
from promptlab.events.embedded import NatsServerProcess
from tests.support.serving import Serve, clean_env, write_config

LITELLM_VENV = ROOT / ".promptlab" / "bench" / "litellm-venv"
DEFAULT_OUT = record.RESULTS / "peers.json"

BARE = "bare aiohttp proxy"
SERVE = "promptlab serve"
NO_LEARNER = "promptlab serve --no-learner"
FLOOR = "routed floor (bench.floor_proxy)"
LITELLM = "LiteLLM proxy"
CONNECTIONS = (1, 8, 32)


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


# ---------------------------------------------------------------------- promptlab


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    with contextlib.suppress(OSError):
        return [int(c) for c in path.read_text().split()]
    return []


def _children_cpu(pid: int) -> float:
    total = 0.0
    for child in _children(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += _cpu_seconds(child)
    return total


def _calls_served(port: int) -> float:
    """Calls the sidecar has counted (``promptlab_calls_total`` in its /metrics)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return sum(
        float(m.group(1))
        for m in re.finditer(r"^promptlab_calls_total\{[^}]*\} (\S+)$", text, re.MULTILINE)
    )


class Promptlab:
    """One ``promptlab serve`` in front of the fake upstream, with its own nats-server."""

    def __init__(
        self,
        tmpdir: Path,
        upstream_port: int,
        *,
        learner: bool,
        checkout: Path = ROOT,
    ) -> None:

        self.nats = NatsServerProcess(tmpdir / "nats")
        self.nats.start()
        self.port = _free_port()
        config = write_config(
            tmpdir,
            {"bench": PROMPT},
            nats_url=self.nats.url,
            extra=f'[providers.fake]\nkind = "openai"\napi_base = "http://127.0.0.1:{upstream_port}/v1"\nmax_retries = 0\n',
        )
        env = clean_env()
        if checkout != ROOT:
            env["PYTHONPATH"] = os.pathsep.join([str(checkout), env.get("PYTHONPATH", "")])
        try:
            self.served = Serve(
                config,
                learner=learner,
                args=["--port", str(self.port)],
                env=env,
                cwd=checkout,
                ready_timeout=60,
            )
        except Exception:
            self.nats.stop()
            raise

    @property
    def pid(self) -> int:
        return self.served.pid

    def stop(self) -> None:
        try:
            self.served.terminate()
        finally:
            self.nats.stop()


# ---------------------------------------------------------------------- run


def _measure(
    port: int, target: str, conns: int, duration: float, warmup: float, pid: int | None
) -> dict[str, Any]:
    """One load run; with ``pid``, also the CPU per call of that process and its children."""
    cpu = _cpu_seconds(pid) if pid else 0.0
    children = _children_cpu(pid) if pid else 0.0
    result = run_load(port, target, conns, duration, warmup)
    if pid:
        calls = max(1, result["n"] + result["errors"]) * (duration + warmup) / duration
        result["cpu_us"] = (_cpu_seconds(pid) - cpu) / calls * 1e6
        result["child_cpu_us"] = (_children_cpu(pid) - children) / calls * 1e6
    return result


def _rss_after(instance: Promptlab, calls: int) -> dict[str, float]:
    """Drive routed calls until the sidecar has served ``calls``; its RSS (and children's)."""
    while (served := _calls_served(instance.port)) < calls:
        left = calls - served
        run_load(instance.port, "routed", 32, min(20.0, max(1.0, left / 2000.0)), 0.0)
    learner = sum(_rss_mb(c) for c in _children(instance.pid))
    return {
        "calls": _calls_served(instance.port),
        "sidecar_mb": _rss_mb(instance.pid),
        "learner_mb": learner,
    }


def _ratio(name: str, value: float, target: float, at_least: bool) -> dict[str, Any]:
    met = value >= target if at_least else value <= target
    return {"name": name, "value": value, "target": target, "at_least": at_least, "met": met}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="2 s per measurement instead of 5")
    parser.add_argument("--duration", type=float, help="seconds per measurement")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (medians printed)")
    parser.add_argument("--no-litellm", action="store_true", help="skip the LiteLLM proxy")
    parser.add_argument(
        "--rss-calls", type=int, help="routed calls before reading serve's RSS (100,000)"
    )
    parser.add_argument(
        "--compare", action="append", default=[], metavar="LABEL=DIR",
        help="also run `serve` and `serve --no-learner` of the checkout in DIR (e.g. before a change)",
    )  # fmt: skip
    parser.add_argument(
        "--out", metavar="FILE", default=str(DEFAULT_OUT), help="write the figures as JSON here"
    )
    parser.add_argument("--no-out", action="store_true", help="write no JSON")
    parser.add_argument("--bare-proxy", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_proxy:
        bare_proxy_main(*args.bare_proxy)
        return
    duration = args.duration or (2.0 if args.quick else 5.0)
    warmup = 0.5 if args.quick else 1.0
    repeat = max(1, args.repeat)
    rss_calls = args.rss_calls or (20_000 if args.quick else 100_000)

    load_before = _loadavg()
    print(f"load average before: {load_before}", flush=True)
    procs: list[subprocess.Popen[str]] = []
    instances: dict[str, Promptlab] = {}
    ports: dict[str, int] = {}
    pids: dict[str, int] = {}
    skipped: dict[str, str] = {}
    stops: list[Any] = []
    with tempfile.TemporaryDirectory(prefix="promptlab-peers-") as tmp:
        tmpdir = Path(tmp)
        try:
            upstream = _free_port()
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "bench.sidecar_latency", "--upstream", str(upstream)],
                    cwd=ROOT,
                    text=True,
                )
            )
            ports[BARE] = _free_port()
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "bench.peers", "--bare-proxy",
                     str(ports[BARE]), str(upstream)],
                    cwd=ROOT,
                    text=True,
                )
            )  # fmt: skip
            pids[BARE] = procs[-1].pid
            _wait_port(upstream)
            _wait_port(ports[BARE])
            floor_nats = NatsServerProcess(tmpdir / "floor-nats")
            floor_nats.start()
            stops.append(floor_nats.stop)
            ports[FLOOR] = _free_port()
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "bench.floor_proxy",
                     str(ports[FLOOR]), str(upstream), floor_nats.url],
                    cwd=ROOT,
                    text=True,
                )
            )  # fmt: skip
            pids[FLOOR] = procs[-1].pid
            _wait_port(ports[FLOOR])
            peers = [(SERVE, True, ROOT), (NO_LEARNER, False, ROOT)]
            for spec in args.compare:
                label, _, directory = spec.partition("=")
                peers.append((f"{SERVE} ({label})", True, Path(directory).resolve()))
                peers.append((f"{NO_LEARNER} ({label})", False, Path(directory).resolve()))
            for name, learner, checkout in peers:
                slug = re.sub(r"\W+", "-", name).strip("-")
                instances[name] = Promptlab(
                    tmpdir / slug, upstream, learner=learner, checkout=checkout
                )
                ports[name], pids[name] = instances[name].port, instances[name].pid
            if args.no_litellm:
                skipped[LITELLM] = "--no-litellm"
            else:
                try:
                    port = _free_port()
                    procs.append(start_litellm(tmpdir, port, upstream))
                    _wait_port(port, timeout=120.0)  # the LiteLLM proxy takes a while to start
                    ports[LITELLM], pids[LITELLM] = port, procs[-1].pid
                except Exception as exc:  # no network, no wheel, no start: the rest still runs
                    skipped[LITELLM] = f"{type(exc).__name__}: {exc}"
                    print(f"LiteLLM proxy skipped: {skipped[LITELLM]}", flush=True)
            rounds: list[dict[str, Any]] = []
            for index in range(repeat):
                row: dict[str, Any] = {}
                for conns in CONNECTIONS:
                    row[f"direct{conns}"] = run_load(upstream, "direct", conns, duration, warmup)
                    for name, port in ports.items():
                        target = "direct" if name in (BARE, LITELLM) else "routed"
                        pid = pids[name] if conns == 8 else None
                        row[f"{name}{conns}"] = _measure(port, target, conns, duration, warmup, pid)
                rounds.append(row)
                print(f"round {index + 1}/{repeat} done (load {_loadavg()})", flush=True)
            print(f"driving {SERVE} to {rss_calls:,} routed calls for its RSS...", flush=True)
            rss = _rss_after(instances[SERVE], rss_calls)
        finally:
            for instance in instances.values():
                with contextlib.suppress(Exception):
                    instance.stop()
            for proc in reversed(procs):
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
            for stop in stops:
                with contextlib.suppress(Exception):
                    stop()

    def med(key: str, field: str) -> float:
        return _median([r[key][field] for r in rounds])

    def added(name: str, conns: int, field: str) -> float:
        return _median([r[f"{name}{conns}"][field] - r[f"direct{conns}"][field] for r in rounds])

    table: dict[str, dict[str, float]] = {
        "upstream direct": {
            "added_p50_1": med("direct1", "p50_ms"),
            "added_p99_1": med("direct1", "p99_ms"),
            "added_p50_8": med("direct8", "p50_ms"),
            "added_p99_8": med("direct8", "p99_ms"),
            "p99_8": med("direct8", "p99_ms"),
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
            "p99_8": med(f"{name}8", "p99_ms"),
            "rps_8": med(f"{name}8", "rps"),
            "rps_32": med(f"{name}32", "rps"),
            "cpu_us_8": med(f"{name}8", "cpu_us"),
            "child_cpu_us_8": med(f"{name}8", "child_cpu_us"),
            "errors": sum(r[f"{name}{c}"]["errors"] for r in rounds for c in CONNECTIONS),
        }

    print(
        f"\nmedians of {repeat} rounds, {duration:g} s each, same fake upstream and load generator"
    )
    print(
        f"{'':<34} {'added p50@1':>11} {'added p99@1':>11} {'added p50@8':>11} {'p99@8':>9}"
        f" {'req/s@8':>8} {'req/s@32':>8} {'CPU/call@8':>10} {'errors':>6}"
    )
    for name, row in table.items():
        cpu = "" if "cpu_us_8" not in row else f"{row['cpu_us_8']:.0f} us"
        if row.get("child_cpu_us_8"):
            cpu += f" +{row['child_cpu_us_8']:.0f}"
        absolute = " (absolute)" if name == "upstream direct" else ""
        print(
            f"{name + absolute:<34} {row['added_p50_1']:>9.3f}ms {row['added_p99_1']:>9.3f}ms"
            f" {row['added_p50_8']:>9.3f}ms {row['p99_8']:>7.2f}ms {row['rps_8']:>8.0f}"
            f" {row['rps_32']:>8.0f} {cpu:>10} {int(row.get('errors', 0)):>6}"
        )
    print("(CPU/call: the process at 8 connections; +N: its learner child process)")

    ours, bare = table[SERVE], table[BARE]
    ratios = [
        _ratio("serve req/s@8 / bare proxy", ours["rps_8"] / bare["rps_8"], 0.9, True),
        _ratio(
            "serve added p50@1 / bare proxy",
            ours["added_p50_1"] / max(bare["added_p50_1"], 1e-9),
            1.3,
            False,
        ),
        _ratio("serve p99@8 / bare proxy", ours["p99_8"] / bare["p99_8"], 1.3, False),
        _ratio(
            "learner's cost: serve req/s@8 / serve --no-learner",
            ours["rps_8"] / table[NO_LEARNER]["rps_8"],
            0.9,
            True,
        ),
        _ratio(
            "serve --no-learner req/s@8 / bare proxy",
            table[NO_LEARNER]["rps_8"] / bare["rps_8"],
            0.9,
            True,
        ),
        _ratio(
            "routed floor req/s@8 / bare proxy (the best a routed call can do here)",
            table[FLOOR]["rps_8"] / bare["rps_8"],
            0.9,
            True,
        ),
    ]
    if LITELLM in table:
        peak = max(ours["rps_8"], ours["rps_32"])
        theirs = max(table[LITELLM]["rps_8"], table[LITELLM]["rps_32"])
        ratios.append(_ratio("serve peak req/s / LiteLLM proxy", peak / theirs, 30.0, True))
    ratios.append(
        _ratio(f"serve RSS after {rss['calls']:,.0f} calls (MB)", rss["sidecar_mb"], 120, False)
    )
    print("\ntargets, from this run:")
    for r in ratios:
        sign = ">=" if r["at_least"] else "<="
        print(
            f"  {r['name']}: {r['value']:.2f} (target {sign} {r['target']:g}) {'met' if r['met'] else 'NOT met'}"
        )
    print(f"  the learner child's RSS: {rss['learner_mb']:.1f} MB")
    floor = table[FLOOR]
    print(
        f"  serve req/s@8 / routed floor: {ours['rps_8'] / floor['rps_8']:.2f};"
        f" CPU per call: bare {bare['cpu_us_8']:.0f} us, floor {floor['cpu_us_8']:.0f} us,"
        f" serve {ours['cpu_us_8']:.0f} us (what a routed call needs at least:"
        f" {floor['cpu_us_8'] - bare['cpu_us_8']:.0f} us over the bare proxy)"
    )
    for name, why in skipped.items():
        print(f"  {name}: skipped ({why})")
    print(f"load average after: {_loadavg()} (all processes share this box's cores)")
    if not args.no_out:
        data = {
            "repeat": repeat,
            "duration_s": duration,
            "rows": table,
            "ratios": ratios,
            "rss": rss,
            "skipped": skipped,
        }
        path = record.write(args.out, "bench.peers", sys.argv[1:], data, load_before)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
