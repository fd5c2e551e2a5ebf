"""``promptlab experiment run|show|list|plan`` and ``promptlab optimize``: the offline lab.

Wiring only: build the providers from settings, open the event bus (embedded NATS by
default), run :mod:`lab`, print. Events are published through the durable publisher, so
a run without NATS still finishes (its events wait in the outbox).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptlab.commands.tables import print_table
from promptlab.lab.experiment import Experiment, ExperimentFileError, load_experiment
from promptlab.lab.report import Report, build_report
from promptlab.lab.results import ResultsFile, Trial, read
from promptlab.lab.runner import Progress, Publish, RunResult, run_experiment
from promptlab.models import make_providers

if TYPE_CHECKING:
    from promptlab.providers import Providers
    from promptlab.settings import Settings

RESULTS_DIR = Path(".promptlab") / "experiments"


def missing_keys(experiment: Experiment, client: Providers) -> list[str]:
    """``model: needs ENV`` for every model of the run whose provider key is not set."""
    from promptlab.providers import ProviderError

    models = set(experiment.spec.models or [])
    if not experiment.spec.models:
        models |= {experiment.prompt.variant(v).model for v in experiment.variant_names()}
    models |= {getattr(e, "model", "") for e in experiment.spec.evaluators if e.kind == "judge"}
    problems = []
    for model in sorted(models):
        try:
            target = client.resolve(model)
        except ProviderError as exc:
            problems.append(f"{model}: {exc}")
            continue
        env = target.settings.api_key_env
        if env and not client.key_present(target.provider):
            problems.append(f"{model}: needs ${env}, which is not set")
    return problems


def _preflight(experiment: Experiment, client: Providers) -> bool:
    problems = missing_keys(experiment, client)
    for problem in problems:
        print(f"promptlab: {problem}", file=sys.stderr)
    if problems:
        print("promptlab: (simulated/* models need no key)", file=sys.stderr)
    return not problems


@contextlib.asynccontextmanager
async def event_sink(settings: Settings | None, enabled: bool) -> AsyncIterator[Publish | None]:
    """A ``publish`` for ExecutionCompleted events (None when disabled or no settings)."""
    if not enabled or settings is None:
        yield None
        return
    from promptlab.events.bus import BusError
    from promptlab.events.credentials import redact_url
    from promptlab.events.embedded import resolve_nats_url
    from promptlab.events.jetstream import JetStreamBus
    from promptlab.events.publisher import EventPublisher

    url, embedded = await resolve_nats_url(settings.nats)
    bus = JetStreamBus(settings.nats, url=url, name="promptlab-lab")
    try:
        await bus.start()
    except BusError as exc:
        print(
            f"promptlab: NATS at {redact_url(url)}: {exc}; events go to the outbox", file=sys.stderr
        )
    publisher = EventPublisher(bus, settings.nats.outbox_dir, settings.nats.publish_queue_size)
    await publisher.start()
    try:
        yield publisher.publish
    finally:
        await publisher.close()
        await bus.close()
        if embedded is not None:
            await embedded.stop()


class ProgressBar:
    """done/total, spend and ETA on one rich progress line (stderr)."""

    def __init__(self, total_hint: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.progress = Progress(
            TextColumn("[bold]trials"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("spend ${task.fields[spend]:.4f}"),
            TextColumn("ETA {task.fields[eta]}"),
            console=Console(stderr=True),
            transient=False,
        )
        self.task = self.progress.add_task("trials", total=total_hint, spend=0.0, eta="-")

    def __enter__(self) -> ProgressBar:
        self.progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.progress.stop()

    def __call__(self, p: Progress) -> None:
        eta = "-" if p.eta_s is None else f"{p.eta_s:.0f}s"
        self.progress.update(self.task, completed=p.done, total=p.total, spend=p.spend_usd, eta=eta)


def _load(args: argparse.Namespace, settings: Settings | None) -> Experiment | None:
    try:
        prompts_dir = getattr(args, "prompts_dir", None)
        return load_experiment(args.file, prompts_dir=prompts_dir)
    except ExperimentFileError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None


def _write_outputs(report: Report, args: argparse.Namespace, results_path: Path) -> None:
    from promptlab.lab.render import print_report

    data = json.dumps(report.to_json(), indent=2)
    results_path.with_suffix(".report.json").write_text(data + "\n", encoding="utf-8")
    if args.json:
        Path(args.json).write_text(data + "\n", encoding="utf-8")
    if args.markdown:
        Path(args.markdown).write_text(report.to_markdown(), encoding="utf-8")
    if args.json == "-":
        print(data)
    else:
        print_report(report)


def _run(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        print("interrupted: finished trials are saved; --resume continues", file=sys.stderr)
        return 130


def run_command(args: argparse.Namespace, settings: Settings | None) -> int:
    """``experiment run FILE``."""
    experiment = _load(args, settings)
    if experiment is None:
        return 2
    path = Path(args.results) if args.results else experiment.results_path()

    async def main() -> int:
        results = ResultsFile(path)
        client = make_providers(settings)
        if not _preflight(experiment, client):
            return 2
        async with client, event_sink(settings, args.events) as pub:
            planned = len(experiment.cases) * experiment.spec.repeats * _points_count(experiment)
            with ProgressBar(planned) as bar:
                run: RunResult = await run_experiment(
                    experiment,
                    client,
                    publish=pub,
                    results=results,
                    resume=args.resume,
                    progress=bar,
                )
        _write_outputs(run.report, args, path)
        print(f"trials: {path}", file=sys.stderr)
        return 0

    return _run(main)


def _points_count(experiment: Experiment) -> int:
    return len(experiment.variant_names()) * max(1, len(experiment.spec.models or []))


def report_from_results(path: Path) -> Report:
    """Rebuild a report from a results JSONL file alone."""
    from promptlab.lab.experiment import ExperimentSpec

    header, trials = read(path)
    spec = ExperimentSpec.model_validate(header.get("spec", {}))
    return build_report(
        trials,
        experiment=header.get("name", spec.name),
        prompt=header.get("prompt", spec.prompt),
        objectives=spec.objective_list(),
        constraints=spec.constraint_list(),
        planned=header.get("planned"),
        stopped_by_budget=bool(header.get("stopped_by_budget")),
        test=spec.test,
        alpha=spec.alpha,
        order=header.get("points"),
    )


def load_report(path: Path) -> Report:
    """A saved report: a ``.json`` report, or rebuilt from a ``.jsonl`` results file."""
    if path.suffix == ".jsonl":
        return report_from_results(path)
    return Report.model_validate_json(path.read_text(encoding="utf-8"))


def show_command(args: argparse.Namespace, settings: Settings | None) -> int:
    """``experiment show RESULT``."""
    from promptlab.lab.render import print_report

    path = Path(args.result)
    if not path.exists() and (RESULTS_DIR / f"{args.result}.jsonl").exists():
        path = RESULTS_DIR / f"{args.result}.jsonl"
    try:
        report = load_report(path)
    except (OSError, ValueError) as exc:
        print(f"promptlab: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    elif args.markdown:
        print(report.to_markdown(), end="")
    else:
        print_report(report)
    return 0


def saved_results(directory: Path = RESULTS_DIR) -> list[dict[str, Any]]:
    """Name, trials, planned and path of every results file under ``directory``."""
    rows = []
    for path in sorted(directory.glob("*.jsonl")):
        header, trials = read(path)
        rows.append(
            {
                "name": header.get("name", path.stem),
                "prompt": header.get("prompt", "?"),
                "trials": len(trials),
                "planned": header.get("planned", len(trials)),
                "path": str(path),
            }
        )
    return rows


def list_command(args: argparse.Namespace, settings: Settings | None) -> int:
    """``experiment list``."""
    rows = saved_results(Path(args.dir))
    if not rows:
        print(f"no results under {args.dir}")
        return 0
    table = ((r["name"], r["prompt"], f"{r['trials']}/{r['planned']}", r["path"]) for r in rows)
    print_table(("NAME", "PROMPT", "TRIALS", "PATH"), table, right=("TRIALS",))
    return 0


def plan_command(args: argparse.Namespace, settings: Settings | None) -> int:
    """``experiment plan FILE --difference D``: cases and repeats needed; calls no model."""
    from promptlab.lab.plan import plan

    experiment = _load(args, settings)
    if experiment is None:
        return 2
    if not 0 < args.power < 1:
        print("promptlab: --power must be between 0 and 1", file=sys.stderr)
        return 2
    path = Path(args.results) if args.results else experiment.results_path()
    trials: list[Trial] = []
    if path.exists():
        try:
            _, trials = read(path)
        except OSError as exc:
            print(f"promptlab: cannot read {path}: {exc}", file=sys.stderr)
            return 2
    elif args.results:
        print(f"promptlab: no such results file: {path}", file=sys.stderr)
        return 2
    try:
        result = plan(
            experiment,
            args.difference,
            power=args.power,
            sd=args.sd,
            trials=trials,
            trials_source=str(path),
        )
    except ValueError as exc:
        print(f"promptlab: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print("\n".join(result.head()))
        print_table(result.TABLE, result.table(), right=result.TABLE, indent=2)
        print(result.tail())
    return 0


def optimize_command(args: argparse.Namespace, settings: Settings | None) -> int:
    """``optimize FILE``."""
    from promptlab.lab.optimize import optimize

    experiment = _load(args, settings)
    if experiment is None:
        return 2
    if getattr(args, "demos", False):
        return _optimize_demos(args, settings, experiment)

    async def main() -> int:
        client = make_providers(settings)
        if not _preflight(experiment, client):
            return 2
        async with client, event_sink(settings, args.events) as pub:
            outcome = await optimize(
                experiment,
                client,
                trials=args.trials,
                publish=pub,
                on_trial=lambda line: print(line, file=sys.stderr),
            )
        if args.json:
            print(json.dumps(outcome.to_json(), indent=2))
        else:
            print(outcome.summary())
        return 0

    return _run(main)


def _optimize_demos(
    args: argparse.Namespace, settings: Settings | None, experiment: Experiment
) -> int:
    """``optimize FILE --demos``: search demonstration sets; print (and register) the winner."""
    from promptlab.commands.evolve import _bus, _maybe_await, register_live
    from promptlab.lab.demo_search import DemoSearchError, optimize_demos

    try:
        ks = sorted({int(k) for k in str(args.k).split(",") if k.strip()})
    except ValueError:
        print(f"promptlab: --k takes comma-separated integers, got {args.k!r}", file=sys.stderr)
        return 2

    async def main() -> int:
        client = make_providers(settings)
        if not _preflight(experiment, client):
            return 2
        enabled = args.events or args.register
        async with client, _bus(settings, enabled) as (pub, bus):
            try:
                outcome = await optimize_demos(
                    experiment, client, variant=args.variant, ks=ks, seed=args.seed, publish=pub
                )
            except (DemoSearchError, KeyError) as exc:
                print(f"promptlab: {exc}", file=sys.stderr)
                return 2
            print(outcome.summary())
            if outcome.winner is None:
                return 0
            print("\n# the winner, for the prompt file:\n" + outcome.winner_toml())
            if not args.register:
                return 0
            if pub is None or bus is None:
                print("promptlab: --register needs NATS; nothing registered", file=sys.stderr)
                return 1
            prompt = experiment.prompt
            variables = [v.model_dump(mode="json", exclude_defaults=True) for v in prompt.variables]
            event = outcome.winner.to_event(
                prompt.id, variables, offline_check=outcome.offline_check()
            )
            # As `evolve --register` does: the event through the durable publisher, the
            # variant where every sidecar watches for run-time variants.
            await _maybe_await(pub(event))
            await register_live(bus, [event])
            print(f"registered {event.variant} as a live challenger of {prompt.id}")
        return 0

    return _run(main)
