"""The ``promptlab`` command line: parse, build Settings once, dispatch.

Each subcommand lives in ``promptlab/commands/<name>.py`` and exposes
``register(subparsers)``, which adds its parser and sets ``handler`` to a function
``handler(args, settings) -> int``. Settings are built here, once, and passed down.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from promptlab.settings import Settings, SettingsError, load_settings

# LiteLLM must never reach the network to fetch its cost map at import time.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

COMMAND_MODULES = (
    "serve",
    "demo",
    "tui",
    "learner",
    "experiment",
    "evolve",
    "prompts",
)

DESCRIPTION = """\
promptlab: a self-improving prompt sidecar.

Point an OpenAI-compatible app at http://127.0.0.1:8787/v1 and use
model="promptlab/<prompt_id>". promptlab routes each call to a prompt variant by
Thompson sampling, records every execution and piece of feedback on NATS JetStream,
and promotes challengers that are better with statistical confidence.
"""

EPILOG = """\
configuration: --config FILE, $PROMPTLAB_CONFIG, or ./config/promptlab.toml;
environment overrides as PROMPTLAB_<SECTION>__<KEY> (e.g. PROMPTLAB_SERVER__PORT=9000).
Run 'promptlab COMMAND --help' for the options of one command.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="promptlab",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", metavar="FILE", help="settings file (TOML)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"promptlab.commands.{name}")
        module.register(sub)
    return parser


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """Let a subcommand accept ``--config`` after its name as well."""
    parser.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help="settings file (TOML)")


def configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    needs_settings = getattr(args, "needs_settings", True)
    settings: Settings | None = None
    if needs_settings:
        try:
            settings = load_settings(args.config)
        except SettingsError as exc:
            print(f"promptlab: {exc}", file=sys.stderr)
            return 2
    try:
        return int(args.handler(args, settings) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
