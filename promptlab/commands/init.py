"""``promptlab init [DIR]``: write the shipped configuration into a project directory.

An installed wheel carries the documented defaults and the examples as package data
(``promptlab/config``); ``init`` copies them to ``DIR/config`` so that ``serve``,
``experiment run config/experiments/summarize.toml`` and ``evolve`` work from any
directory, and so that a team edits its own copy rather than the installed one.
"""

from __future__ import annotations

import argparse
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from promptlab.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "init",
        help="write the default config, an example prompt and an example experiment",
        description="Copy the shipped config/ (promptlab.toml with every default documented, "
        "prompts/summarize.toml, experiments/summarize.toml with its cases, and the "
        "mutator's instructions) into DIR/config. Existing files are kept unless --force.",
    )
    parser.add_argument("dir", nargs="?", default=".", metavar="DIR", help="project directory")
    parser.add_argument("--force", action="store_true", help="overwrite files that exist")
    parser.set_defaults(handler=run, needs_settings=False)


def shipped_files() -> list[tuple[str, Traversable]]:
    """Every shipped configuration file, as (path relative to ``config/``, resource)."""
    found: list[tuple[str, Traversable]] = []

    def walk(node: Traversable, prefix: str) -> None:
        for child in sorted(node.iterdir(), key=lambda c: c.name):
            name = f"{prefix}{child.name}"
            if child.is_dir():
                walk(child, name + "/")
            elif child.name.endswith((".toml", ".jsonl")):
                found.append((name, child))

    walk(files("promptlab").joinpath("config"), "")
    return found


def run(args: argparse.Namespace, settings: Settings | None) -> int:
    target = Path(args.dir) / "config"
    written, kept = 0, 0
    for name, resource in shipped_files():
        path = target / name
        if path.exists() and not args.force:
            kept += 1
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(resource.read_bytes())
        written += 1
        print(f"wrote {path}")
    if kept:
        print(f"kept {kept} existing file(s) (--force overwrites them)")
    print(
        f"next: cd {args.dir} && promptlab serve   "
        "(or: promptlab experiment run config/experiments/summarize.toml)"
    )
    return 0 if written or kept else 1
