"""``promptlab demo``: the whole loop on embedded defaults, with a simulated application."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from promptlab.cli import add_config_option
from promptlab.settings import Settings

DESCRIPTION = """\
Run the whole promptlab loop in one process, with no API key and no server to install:
embedded NATS, SQLite, the sidecar, the learner, and a SIMULATED application that calls
the sidecar through the official openai SDK and sends SIMULATED user feedback. The
demo's variants differ in a hidden quality that promptlab is not told; watch it find
the better one. With a terminal the TUI opens (press q to leave); --headless prints
progress lines and a summary instead.
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "demo",
        help="run the whole loop with a simulated app (no API key needed)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_option(parser)
    parser.add_argument(
        "--headless",
        action="store_true",
        help="no TUI: progress lines and a summary (default without a terminal)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the summary as JSON (implies --headless)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the simulated app and the router (default 0)"
    )
    parser.add_argument(
        "--requests", type=int, default=3000, help="calls the simulated app makes (default 3000)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=16, help="calls in flight at once (default 16)"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".promptlab/demo"),
        help="where the demo keeps its state; reset at every run (default .promptlab/demo)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from promptlab.demo import run_demo
    from promptlab.demo_summary import render_summary

    if args.requests < 1 or args.concurrency < 1:
        print("promptlab demo: --requests and --concurrency must be at least 1", file=sys.stderr)
        return 2
    interactive = not (args.headless or args.json) and sys.stdin.isatty() and sys.stdout.isatty()

    def line(text: str) -> None:
        if not args.json and not interactive:
            print(text, flush=True)

    summary = asyncio.run(
        run_demo(
            settings,
            data_dir=args.data_dir.absolute(),
            requests=args.requests,
            concurrency=args.concurrency,
            seed=args.seed,
            on_line=line,
            with_tui=interactive,
        )
    )
    print(summary.to_json() if args.json else render_summary(summary))
    return 0
