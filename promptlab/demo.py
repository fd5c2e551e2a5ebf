"""``promptlab demo``: the whole loop in one process, on embedded defaults.

Embedded NATS, SQLite, the sidecar, the learner and a SIMULATED application that calls
the sidecar through the official ``openai`` SDK and sends SIMULATED user feedback in
which the variants have different hidden qualities. No API key, no network: the
variants run on the simulated provider. promptlab is not told which variant is better;
the demo shows it finding out.

Everything lives in ``<data dir>`` (default ``.promptlab/demo`` under the working
directory), which is reset at every run, so the demo can run twice in a row. What it
reports (the decisions it saw, the summary) is :mod:`promptlab.demo_summary`.

The demo is one scripted run (its data dir, the embedded server, the sidecar, the
learner, the simulated app) in one order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

from aiohttp import web

from promptlab.demo_summary import DecisionWatcher, DemoSummary, describe
from promptlab.demo_waves import LearnerStepper, keep_learning, routed_by_latest
from promptlab.events.bus import EventBus
from promptlab.events.credentials import redact_url
from promptlab.events.embedded import STATE_FILE, EmbeddedNats, pid_alive
from promptlab.events.jetstream import JetStreamBus
from promptlab.events.publisher import EventPublisher
from promptlab.lab.traffic import SIMULATED_LABEL, SimulatedUsers, TrafficReport, run_traffic
from promptlab.learner.service import Learner
from promptlab.models import make_providers
from promptlab.prompts import PromptSpec, load_prompt_dir
from promptlab.settings import Settings
from promptlab.sidecar import keys
from promptlab.sidecar.app import create_app

DEMO_PROMPTS = Path(str(files("promptlab").joinpath("demo_prompts")))
DEMO_PROMPT_ID = "support_reply"

HIDDEN_QUALITY = {"v1_plain": 0.55, "v2_empathetic_steps": 0.70, "v3_terse": 0.40}
"""P(thumbs up) of each demo variant: known to the simulated users only."""

QUESTIONS = (
    "How do I reset my password?",
    "My invoice shows a double charge.",
    "The app crashes when I upload a photo.",
    "Can I export my data to CSV?",
    "How do I add a team member?",
    "Sync stopped working after the update.",
)
PRODUCTS = ("Acme Cloud", "Acme Mobile", "Acme Desktop")


def demo_settings(base: Settings, data_dir: Path) -> Settings:
    """The demo's settings: the caller's, with everything stateful under ``data_dir``."""
    return base.model_copy(
        update={
            "nats": base.nats.model_copy(
                update={
                    "url": "embedded",
                    "data_dir": data_dir / "nats",
                    "outbox_dir": data_dir / "outbox",
                    "embedded_port": 0,
                }
            ),
            "storage": base.storage.model_copy(
                update={"url": f"sqlite+aiosqlite:///{data_dir / 'promptlab.db'}"}
            ),
            "server": base.server.model_copy(
                update={"host": "127.0.0.1", "port": 0, "api_keys": [], "workers": 1}
            ),
            "learner": base.learner.model_copy(
                update={
                    "enabled": True,
                    "snapshot_interval_ms": 200,
                    # The TUI's analytics tab fills within seconds, not at the default 15 s.
                    "analytics_interval_s": min(base.learner.analytics_interval_s, 2.0),
                    # Breeding on, soon enough to be seen in a short run: one bred
                    # challenger beside the file's two, from the champion's 100th reward.
                    "evolution": base.learner.evolution.model_copy(
                        update={
                            "enabled": True,
                            "population": 3,
                            "min_champion_samples": 100,
                            "interval_s": 1.0,
                        }
                    ),
                }
            ),
            "prompts": base.prompts.model_copy(update={"dir": DEMO_PROMPTS}),
        }
    )


def reset_data_dir(data_dir: Path) -> None:
    """Start from nothing: stop a server a crashed earlier demo left behind, wipe the dir."""
    state = data_dir / "nats" / STATE_FILE
    with contextlib.suppress(OSError, ValueError, KeyError):
        pid = int(json.loads(state.read_text())["pid"])
        if pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 5
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True, exist_ok=True)


def _variables(rng: Any, i: int) -> dict[str, Any]:
    return {
        "question": QUESTIONS[i % len(QUESTIONS)],
        "product": PRODUCTS[rng.randrange(len(PRODUCTS))],
    }


WAVE_REQUESTS = 100
"""Calls per wave: the learner decides between waves (see :mod:`promptlab.demo_waves`)."""


async def run_demo(
    settings: Settings,
    *,
    data_dir: Path,
    requests: int = 4000,
    concurrency: int = 16,
    seed: int = 0,
    on_line: Callable[[str], None] = print,
    with_tui: bool = False,
    wave: int = WAVE_REQUESTS,
    run_tui: Callable[[Any], Awaitable[object]] | None = None,
) -> DemoSummary:
    """Run the demo loop and return its summary (``on_line`` gets progress lines).

    Reproducible: the same ``seed`` gives the same decisions after the same number of
    requests and the same summary (traffic goes in waves of ``wave`` calls with the
    learner applying each wave as one batch). With the TUI, the learner keeps running
    after the traffic until the user quits (commands from the TUI act, its status and
    analytics keep coming); quitting early ends the traffic after the wave in flight, and
    the summary covers the traffic and the decisions taken during it.
    ``run_tui(app)`` runs the TUI (default ``app.run_async()``; tests drive a pilot).
    """
    reset_data_dir(data_dir)
    settings = demo_settings(settings, data_dir)
    prompts: dict[str, PromptSpec] = load_prompt_dir(DEMO_PROMPTS)
    users = SimulatedUsers(HIDDEN_QUALITY)
    on_line(f"promptlab demo: {SIMULATED_LABEL}; variants run on the simulated provider")
    on_line(
        "hidden quality (P thumbs up): "
        + ", ".join(f"{k} {v:.2f}" for k, v in HIDDEN_QUALITY.items())
    )

    async with EmbeddedNats(settings.nats) as nats:
        bus = JetStreamBus(settings.nats, url=nats.url)
        await bus.start()
        publisher = EventPublisher(bus, settings.nats.outbox_dir, settings.nats.publish_queue_size)
        app = create_app(settings, prompts=prompts, publisher=publisher, bus=bus, router_seed=seed)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        base_url = f"http://127.0.0.1:{port}/v1"
        on_line(
            f"sidecar on {base_url} · nats {redact_url(nats.url)} · storage {settings.storage.url}"
        )
        report = TrafficReport()
        progress = {"done": 0}
        watcher = DecisionWatcher(bus, lambda: progress["done"])
        learner = Learner(settings.learner, settings.storage, bus, prompts)
        breeder_client = make_providers(settings) if settings.learner.evolution.enabled else None
        if breeder_client is not None:
            learner.attach_breeder(breeder_client)
        stepper = LearnerStepper(learner, bus, live=with_tui)
        stop = asyncio.Event()
        last: Counter[str] = Counter()
        every = max(1, requests // 10)

        def show(r: TrafficReport) -> None:
            # Shares over the last interval, so a promotion shows as a shift.
            recent = r.by_variant - last
            last.clear()
            last.update(r.by_variant)
            total = max(sum(recent.values()), 1)
            shares = " ".join(f"{v} {recent[v] / total:4.0%}" for v in sorted(r.by_variant))
            champion = watcher.champion or prompts[DEMO_PROMPT_ID].champion.name
            on_line(
                f"[{r.requests:>5}/{requests}] {r.requests / max(r.elapsed_s, 1e-9):5.0f} req/s · share {shares} · champion {champion}"
            )

        async def traffic() -> TrafficReport:
            await stepper.step(watcher.record)  # the announced variants
            await routed_by_latest(bus, app[keys.ROUTER], DEMO_PROMPT_ID)
            while report.requests < requests and not stop.is_set():
                size = min(wave, requests - report.requests)
                before = report.requests
                await run_traffic(
                    base_url,
                    DEMO_PROMPT_ID,
                    users,
                    requests=size,
                    concurrency=concurrency,
                    seed=seed,
                    variables=_variables,
                    report=report,
                    start_index=before,
                )
                progress["done"] = report.requests
                await publisher.flush(10.0)
                await stepper.step(watcher.record)
                await _breed(learner, stepper, watcher, app)
                await routed_by_latest(bus, app[keys.ROUTER], DEMO_PROMPT_ID)
                if report.requests // every > before // every or report.requests >= requests:
                    show(report)
            if with_tui and not stop.is_set():  # the TUI stays live until the user quits
                await keep_learning(learner, stepper, stop)
            return report

        try:
            if breeder_client is not None:
                await breeder_client.start()
            await learner.start()
            await stepper.open()
            if with_tui:
                await _with_tui(bus, traffic(), stop, run_tui)
            else:
                await traffic()
        finally:
            await stepper.close()
            await learner.close()
            if breeder_client is not None:
                await breeder_client.close()
            await runner.cleanup()
            await bus.close()

    on_line(f"{report.requests} requests in {report.elapsed_s:.1f} s")
    for decision in watcher.seen:
        on_line(describe(decision))
    summary = _summary(settings, seed, report, users, watcher, prompts[DEMO_PROMPT_ID])
    summary.bred = _bred(learner, report)
    return summary


async def _breed(
    learner: Learner, stepper: LearnerStepper, watcher: DecisionWatcher, app: web.Application
) -> None:
    """Between waves: one breeding attempt; a bred variant is routed before the next wave."""
    if learner.breeder is None:
        return
    outcome = await learner.breeder.breed_once(DEMO_PROMPT_ID)
    if outcome is None or not outcome.accepted:
        return
    await stepper.step(watcher.record)  # its registration, applied as a challenger
    catalog = app[keys.CATALOG]
    deadline = asyncio.get_running_loop().time() + 30.0

    def routed() -> set[str]:
        spec = catalog.get(DEMO_PROMPT_ID)
        return {v.name for v in spec.variants} if spec is not None else set()

    while outcome.variant not in routed():
        if asyncio.get_running_loop().time() > deadline:  # the variants bucket watch is late
            raise TimeoutError(f"the sidecar did not take {outcome.variant}")
        await asyncio.sleep(0.005)


def _bred(learner: Learner, report: TrafficReport) -> list[dict[str, Any]]:
    if learner.breeder is None:
        return []
    return [
        {
            "variant": o.variant,
            "from": learner.breeder.known[o.prompt_id][o.variant].parent
            if o.variant in learner.breeder.known[o.prompt_id]
            else None,
            "strategy": o.operator,
            "entered_traffic": o.accepted,
            "check": o.reason,
            "calls": report.by_variant.get(o.variant, 0),
        }
        for o in learner.breeder.outcomes
        if o.variant is not None
    ]


async def _with_tui(
    bus: EventBus,
    traffic: Any,
    stop: asyncio.Event,
    run_tui: Callable[[Any], Awaitable[object]] | None = None,
) -> None:
    """Run the traffic while the TUI shows it; the TUI stays open until the user quits.

    Quitting early stops the traffic after the wave in flight: the summary then tells
    what happened so far.
    """
    from promptlab.tui import make_tui

    task = asyncio.ensure_future(traffic)
    app = make_tui(bus, title="promptlab demo (simulated traffic)")
    try:
        await (run_tui(app) if run_tui is not None else app.run_async())
    finally:
        stop.set()
        await task


def _summary(
    settings: Settings,
    seed: int,
    report: TrafficReport,
    users: SimulatedUsers,
    watcher: DecisionWatcher,
    prompt: PromptSpec,
) -> DemoSummary:
    best = max(HIDDEN_QUALITY, key=HIDDEN_QUALITY.__getitem__)
    champion = watcher.champion or prompt.champion.name
    calls = max(report.ok, 1)
    equal = users.equal_split_expectation()
    return DemoSummary(
        label=SIMULATED_LABEL,
        seed=seed,
        requests=report.requests,
        ok=report.ok,
        errors=report.errors,
        hidden_quality=dict(HIDDEN_QUALITY),
        truly_best=best,
        final_champion=champion,
        promoted_truly_best=champion == best,
        decisions=watcher.seen,
        traffic_share={v: round(report.share(v), 4) for v in sorted(report.by_variant)},
        reward_per_call=round(report.expected_reward / calls, 4),
        equal_split_reward_per_call=round(equal, 4),
        reward_gain_vs_equal_split=round(report.expected_reward - equal * report.ok, 1),
    )
