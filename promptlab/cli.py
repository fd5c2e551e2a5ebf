"""The ``promptlab`` command line: parse, build Settings once, dispatch.

Each command adds its parser through a ``register`` function listed in
:data:`COMMANDS` and sets ``handler(args, settings) -> int``; commands whose work needs
heavy imports declare their parsers in ``promptlab/commands/parsers.py`` with a
:func:`lazy` handler. Settings are built here, once, and passed down.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from promptlab.logs import configure_logging
from promptlab.settings import Settings, SettingsError, load_settings

# LiteLLM must never reach the network to fetch its cost map at import time.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

COMMANDS = (
    "promptlab.commands.parsers:register_serve",
    "promptlab.commands.demo:register",
    "promptlab.commands.parsers:register_tui",
    "promptlab.commands.parsers:register_learner",
    "promptlab.commands.prompts:register",
    "promptlab.commands.parsers:register_experiment",
    "promptlab.commands.analytics:register",
    "promptlab.commands.dataset:register",
    "promptlab.commands.parsers:register_evolve",
    "promptlab.commands.init:register",
)
"""``module:function`` adding each command's parser, in the order ``--help`` lists them."""

Handler = Callable[[argparse.Namespace, "Settings | None"], int]

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
    parser = Parser(
        prog="promptlab",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", metavar="FILE", help="settings file (TOML)")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more log output: -v info and the access log, -vv debug",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="log lines as text (default) or one JSON object per line",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for target in COMMANDS:
        _resolve(target)(sub)
    return parser


def version() -> str:
    """The installed distribution's version."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("promptlab")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "unknown"


class Parser(argparse.ArgumentParser):
    """An argument parser with ``--version``. Sub-commands are parsers of the same
    class (``add_subparsers`` uses the parent's class), so every command has it.

    :attr:`commands` maps each sub-command's name (and alias) to its parser: argparse
    has no public way to list them, and the CLI reference in the docs walks them.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands: dict[str, argparse.ArgumentParser] = {}
        self.add_argument(
            "--version",
            action="version",
            version=f"promptlab {version()}",
            help="print the version",
        )

    def add_subparsers(self, **kwargs: Any) -> Any:
        """As argparse's, and remember the sub-commands in :attr:`commands`."""
        action = super().add_subparsers(**kwargs)
        # The action's ``choices`` is the name -> parser mapping that add_parser fills.
        self.commands = action.choices
        return action


def _resolve(target: str) -> Callable[..., Any]:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def lazy(target: str) -> Handler:
    """A handler that imports ``module:function`` only when its command runs.

    Parsing arguments (and ``--help``) then costs no import of aiohttp, SQLAlchemy,
    SciPy or Textual, which is most of a command's start-up time.
    """

    def handler(args: argparse.Namespace, settings: Settings | None) -> int:
        return int(_resolve(target)(args, settings) or 0)

    handler.__qualname__ = f"lazy({target})"
    return handler


def moment(text: str) -> datetime:
    """An option's ISO date or time (``--from``, ``--since``, ...); UTC unless it says."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is no ISO date or time (e.g. 2025-01-06 or 2025-01-06T12:00)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """Let a subcommand accept ``--config`` after its name as well."""
    parser.add_argument(
        "--config", metavar="FILE", default=argparse.SUPPRESS, help="settings file (TOML)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # `promptlab stats --json | head`: the reader left. Point stdout at /dev/null so
        # the interpreter's final flush does not raise again, and exit as `head` expects.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a pipe closed early


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose, args.log_format)
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
