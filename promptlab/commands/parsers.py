"""Argument parsers of the commands whose work needs heavy imports.

``promptlab --help`` and the start of every command parse arguments first; building
these parsers must not import aiohttp, SQLAlchemy, SciPy or Textual. Each handler is
:func:`promptlab.cli.lazy`: its module is imported only when the command runs.
"""

from __future__ import annotations

import argparse

from promptlab.cli import add_config_option, lazy

TUI_DESCRIPTION = """\
Watch every prompt live: champions, challengers, traffic, posteriors, promotions and
lineage. Keys: enter opens a prompt, p promotes the selected variant, r rolls back,
s pauses or resumes exploration (each asks first), a shows or hides archived
variants, e lists saved experiment reports (enter opens one), esc goes back, q quits.
"""


def register_serve(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "serve",
        help="run the sidecar (and embedded NATS, and the learner)",
        description="Serve the OpenAI-compatible sidecar on http://HOST:PORT/v1, with embedded NATS unless nats.url names a server.",
    )
    add_config_option(parser)
    parser.add_argument("--host", help="bind address (default: server.host, 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, help="port (default: server.port, 8787; 0 picks a free one)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        help="processes sharing the port with SO_REUSEPORT (default: server.workers, 1)",
    )
    parser.add_argument(
        "--no-learner", action="store_true", help="do not run the learner in this process"
    )
    # Internal: how the parent starts its workers.
    parser.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    parser.set_defaults(handler=lazy("promptlab.commands.serve:run"))


def register_tui(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "tui",
        help="live terminal UI: prompts, variants, promotions; promote/rollback/pause",
        description=TUI_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_option(parser)
    parser.add_argument("--nats", metavar="URL", help="NATS URL to watch (default: from settings)")
    parser.add_argument(
        "--stale-after",
        metavar="SECONDS",
        type=float,
        default=10.0,
        help='show "learner offline" after this long without stats while traffic flows (default 10)',
    )
    parser.set_defaults(handler=lazy("promptlab.commands.tui:run"))


def register_learner(sub: argparse._SubParsersAction) -> None:
    """Add ``learner``, ``replay``, ``stats``, ``promote``, ``rollback`` and ``pause``."""
    learner = sub.add_parser(
        "learner",
        help="run the learner alone (one is active per store, others stand by)",
        description="Run the learner without a sidecar (for fleets of 'serve --no-learner'). "
        "It takes the store's lease, or stands by until the active learner stops.",
    )
    add_config_option(learner)
    learner.set_defaults(handler=lazy("promptlab.commands.learner_run:run"))

    replay = sub.add_parser(
        "replay", help="rebuild the learner's projection from the stream and compare"
    )
    replay.add_argument("--json", action="store_true", help="print the report as JSON")
    add_config_option(replay)
    replay.set_defaults(handler=lazy("promptlab.commands.learner:replay_command"))

    stats = sub.add_parser(
        "stats", help="per prompt and variant: reward, P(best), cost, latency, status"
    )
    stats.add_argument("--json", action="store_true", help="print as JSON")
    stats.add_argument("--prompt", metavar="ID", help="only this prompt")
    stats.add_argument("--all", action="store_true", help="show archived variants too")
    add_config_option(stats)
    stats.set_defaults(handler=lazy("promptlab.commands.learner:stats_command"))

    promote = sub.add_parser("promote", help="make a variant the champion of a prompt")
    promote.add_argument("prompt", help="prompt id")
    promote.add_argument("variant", help="variant name")
    command_options(promote)
    promote.set_defaults(handler=lazy("promptlab.commands.learner:promote_command"))

    rollback = sub.add_parser("rollback", help="undo the last promotion of a prompt")
    rollback.add_argument("prompt", help="prompt id")
    command_options(rollback)
    rollback.set_defaults(handler=lazy("promptlab.commands.learner:rollback_command"))

    pause = sub.add_parser(
        "pause", help="stop exploring a prompt (champion only); --resume to restart"
    )
    pause.add_argument("prompt", help="prompt id")
    pause.add_argument("--resume", action="store_true", help="resume exploration instead")
    command_options(pause)
    pause.set_defaults(handler=lazy("promptlab.commands.learner:pause_command"))


def command_options(parser: argparse.ArgumentParser) -> None:
    """``--reason``, ``--actor``, ``--wait`` and ``--config`` of a command sent to the learner."""
    parser.add_argument("--reason", default="", help="why (recorded with the decision)")
    parser.add_argument("--actor", default="cli", help="who asks (recorded with the decision)")
    parser.add_argument(
        "--wait",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds to wait for the learner's answer",
    )
    add_config_option(parser)


def register_experiment(sub: argparse._SubParsersAction) -> None:
    """Add ``experiment`` (run, show, list) and ``optimize``."""
    parser = sub.add_parser("experiment", help="offline experiments: run, show, list, plan")
    commands = parser.add_subparsers(dest="experiment_command", metavar="SUBCOMMAND", required=True)

    run = commands.add_parser(
        "run",
        help="run an experiment file: variants x models x cases x repeats",
        description="Run config/experiments/NAME.toml; trials are appended to a JSONL "
        "file as they finish (Ctrl-C keeps them; --resume continues).",
    )
    run.add_argument("file", metavar="FILE", help="experiment file (TOML)")
    run.add_argument("--json", metavar="OUT", help="write the JSON report here ('-': stdout)")
    run.add_argument("--markdown", metavar="OUT", help="write the Markdown report here")
    run.add_argument("--resume", action="store_true", help="keep finished trials, run the rest")
    run.add_argument("--results", metavar="JSONL", help="trials file (default from the experiment)")
    run.add_argument("--prompts-dir", help="where prompt ids are looked up")
    run.add_argument("--no-events", dest="events", action="store_false", help="publish no events")
    add_config_option(run)
    run.set_defaults(handler=lazy("promptlab.commands.experiment:run_command"))

    show = commands.add_parser("show", help="re-render a saved report (.json) or results (.jsonl)")
    show.add_argument("result", metavar="RESULT", help="report/results file, or experiment name")
    show.add_argument("--json", action="store_true", help="print the JSON report")
    show.add_argument("--markdown", action="store_true", help="print Markdown")
    show.set_defaults(
        handler=lazy("promptlab.commands.experiment:show_command"), needs_settings=False
    )

    plan = commands.add_parser(
        "plan",
        help="cases and repeats needed to detect a difference (calls no model)",
        description="How many cases and repeats the experiment needs to detect a difference "
        "in mean quality with 80%% power at its alpha (Holm over its comparisons). The "
        "spread of per-case differences comes from --sd, else from the experiment's saved "
        "trials, else a conservative assumption; the plan says which. No model is called.",
    )
    plan.add_argument("file", metavar="FILE", help="experiment file (TOML)")
    plan.add_argument(
        "--difference", type=float, required=True, help="difference in mean quality (0..1)"
    )
    plan.add_argument("--sd", type=float, help="spread of per-case quality differences")
    plan.add_argument("--power", type=float, default=0.8, help="power wanted (default 0.8)")
    plan.add_argument("--results", metavar="JSONL", help="trials to measure the spread from")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.add_argument("--prompts-dir", help="where prompt ids are looked up")
    plan.set_defaults(
        handler=lazy("promptlab.commands.experiment:plan_command"), needs_settings=False
    )

    listing = commands.add_parser("list", help="saved experiment results")
    listing.add_argument("--dir", default=".promptlab/experiments", help="results directory")
    listing.set_defaults(
        handler=lazy("promptlab.commands.experiment:list_command"), needs_settings=False
    )

    opt = sub.add_parser(
        "optimize",
        help="search variants x models x params with optuna under the budget",
        description="TPE for one objective, NSGA-II for several (the Pareto front).",
    )
    opt.add_argument("file", metavar="FILE", help="experiment file (TOML) with [optimize]")
    opt.add_argument("--trials", type=int, help="optuna trials (default: [optimize] trials)")
    opt.add_argument("--json", action="store_true", help="print the outcome as JSON")
    opt.add_argument(
        "--demos",
        action="store_true",
        help="search demonstration sets (which cases, how many, in what order) instead: "
        "chosen on validation cases, compared with the variant on held-out ones",
    )
    opt.add_argument("--variant", help="--demos: the variant to add demonstrations to")
    opt.add_argument(
        "--k", default="1,2,4,8", help="--demos: set sizes to try, comma-separated (1,2,4,8)"
    )
    opt.add_argument("--seed", type=int, default=0, help="--demos: seed of the split and sets")
    opt.add_argument(
        "--register",
        action="store_true",
        help="--demos: register the winner as a live challenger (select = fixed)",
    )
    opt.add_argument("--prompts-dir", help="where prompt ids are looked up")
    opt.add_argument("--no-events", dest="events", action="store_false", help="publish no events")
    add_config_option(opt)
    opt.set_defaults(handler=lazy("promptlab.commands.experiment:optimize_command"))


def register_evolve(sub: argparse._SubParsersAction) -> None:
    """Add ``evolve``."""
    parser = sub.add_parser(
        "evolve",
        help="breed better prompt variants by LLM-driven mutation, tested offline",
        description="Mutate the experiment's seed variant (its first listed variant, or the "
        "champion) with the [evolution] mutator, evaluate every mutant as an experiment, "
        "and search by genetic, hill-climbing, annealing or per-case Pareto selection.",
    )
    parser.add_argument("file", metavar="FILE", help="experiment file (TOML) with [evolution]")
    parser.add_argument("--generations", type=int, help="generations (default: [evolution])")
    parser.add_argument("--population", type=int, help="mutants per generation")
    parser.add_argument("--strategies", nargs="+", metavar="OP", help="mutation operators")
    parser.add_argument(
        "--search", choices=["genetic", "hill_climbing", "annealing", "pareto"], help="selection"
    )
    parser.add_argument("--mutator", metavar="PROVIDER/MODEL", help="model that writes mutants")
    parser.add_argument("--budget-usd", type=float, help="most USD the whole search spends")
    parser.add_argument("--max-calls", type=int, help="most calls (mutator, model, judge)")
    parser.add_argument("--seed", type=int, help="random seed (default: [evolution] seed)")
    parser.add_argument("--json", metavar="OUT", help="write the JSON report here ('-': stdout)")
    parser.add_argument(
        "--register", action="store_true", help="add the winners as live challengers"
    )
    parser.add_argument("--prompts-dir", help="where prompt ids are looked up")
    parser.add_argument(
        "--no-events", dest="events", action="store_false", help="publish no events"
    )
    add_config_option(parser)
    parser.set_defaults(handler=lazy("promptlab.commands.evolve:evolve_command"))
