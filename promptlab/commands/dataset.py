"""`promptlab dataset create|list|show|export`: lab datasets drawn from production traffic.

``create`` asks the learner's query layer (:mod:`learner.datasets`) to draw a prompt's
production examples into a dataset file (:mod:`lab.datasets`); the others read the
files. This module only parses and prints.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING

from promptlab.cli import add_config_option, moment
from promptlab.commands.tables import print_table

if TYPE_CHECKING:
    from promptlab.settings import Settings

DEFAULT_DIR = Path(".promptlab") / "datasets"
"""As :data:`lab.datasets.DEFAULT_DATASETS_DIR` (not imported: ``--help`` stays light)."""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "dataset",
        help="datasets for the lab drawn from production traffic",
        description=(
            "Draw a prompt's production examples ([learning] capture = true) into a "
            'dataset an experiment reads with dataset = "NAME".'
        ),
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    create = actions.add_parser("create", help="draw a dataset from the examples table")
    create.add_argument("name", help="dataset name (letters, digits, _ . -)")
    create.add_argument("--prompt", required=True, metavar="ID", help="prompt id")
    create.add_argument("--since", type=moment, metavar="TIME", help="calls from (ISO, UTC)")
    create.add_argument("--until", type=moment, metavar="TIME", help="calls before (ISO, UTC)")
    create.add_argument("--variant", metavar="V", help="calls served by this variant")
    rewards = create.add_mutually_exclusive_group()
    rewards.add_argument("--min-reward", type=float, metavar="X", help="reward at least X")
    rewards.add_argument("--max-reward", type=float, metavar="X", help="reward at most X")
    create.add_argument("--sample", type=_positive, metavar="N", help="draw N (seeded)")
    create.add_argument(
        "--stratify-by",
        metavar="reward|VAR",
        help="balance the sample over reward classes or a variable's values",
    )
    create.add_argument(
        "--dedupe", action="store_true", help="one example per distinct set of variables"
    )
    create.add_argument(
        "--good-reward",
        type=float,
        default=0.8,
        metavar="X",
        help="a rated answer at or above X is the case's expected answer (default 0.8)",
    )
    create.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    create.add_argument("--replace", action="store_true", help="overwrite a dataset of that name")
    _directory(create)
    create.set_defaults(handler=run_create)

    listing = actions.add_parser("list", help="datasets in the directory")
    _directory(listing)
    listing.set_defaults(handler=run_list, needs_settings=False)

    show = actions.add_parser("show", help="a dataset's description and first cases")
    show.add_argument("name")
    show.add_argument("--cases", type=int, default=5, metavar="N", help="cases shown (default 5)")
    _directory(show)
    show.set_defaults(handler=run_show, needs_settings=False)

    export = actions.add_parser("export", help="print a dataset as JSONL (the lab's case shape)")
    export.add_argument("name")
    _directory(export)
    export.set_defaults(handler=run_export, needs_settings=False)


def _directory(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_DIR,
        metavar="DIR",
        help=f"datasets directory (default {DEFAULT_DIR})",
    )
    add_config_option(parser)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive count")
    return value


async def _create(args: argparse.Namespace, settings: Settings) -> str:
    from promptlab.learner.datasets import DatasetQuery, create_dataset
    from promptlab.learner.storage.store import Store

    query = DatasetQuery(
        prompt_id=args.prompt,
        since=args.since,
        until=args.until,
        variant=args.variant,
        min_reward=args.min_reward,
        max_reward=args.max_reward,
        sample=args.sample,
        stratify_by=args.stratify_by,
        dedupe=args.dedupe,
        good_reward=args.good_reward,
        seed=args.seed,
    )
    store = Store(settings.storage.url)
    try:
        await store.create()
        info = await create_dataset(store, args.dir, args.name, query, replace=args.replace)
    finally:
        await store.close()
    return (
        f"dataset {info.name}: {info.cases} cases of prompt {info.prompt_id} "
        f"({info.with_expected} with an expected answer) in {args.dir}"
    )


def run_create(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from promptlab.lab.datasets import DatasetError
    from promptlab.learner.datasets import DatasetQueryError
    from promptlab.learner.storage.store import StoreError

    try:
        print(asyncio.run(_create(args, settings)))
    except (DatasetError, DatasetQueryError) as exc:
        print(f"promptlab dataset create: {exc}", file=sys.stderr)
        return 1
    except (StoreError, SQLAlchemyError, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(
            f"promptlab dataset create: cannot read the learner's database: {reason}",
            file=sys.stderr,
        )
        return 1
    return 0


def run_list(args: argparse.Namespace, _settings: Settings | None) -> int:
    from promptlab.lab.datasets import list_datasets

    found = list_datasets(args.dir)
    if not found:
        print(f"no datasets in {args.dir}", file=sys.stderr)
        return 0
    rows = (
        (
            info.name,
            info.prompt_id,
            info.cases,
            info.with_expected,
            info.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
        )
        for info in found
    )
    headings = ("NAME", "PROMPT", "CASES", "EXPECTED", "CREATED (UTC)")
    print_table(headings, rows, right=("CASES", "EXPECTED"))
    return 0


def run_show(args: argparse.Namespace, _settings: Settings | None) -> int:
    from promptlab.lab.datasets import DatasetError, dataset_info, read_dataset

    try:
        info = dataset_info(args.dir, args.name)
        cases = read_dataset(args.dir, args.name)
    except DatasetError as exc:
        print(f"promptlab dataset show: {exc}", file=sys.stderr)
        return 1
    print(f"dataset {info.name}  prompt {info.prompt_id}  created {info.created_at.isoformat()}")
    print(f"{info.cases} cases, {info.with_expected} with an expected answer")
    print(f"filters: {json.dumps(info.filters, sort_keys=True)}")
    for case in cases[: max(args.cases, 0)]:
        print(json.dumps(case, ensure_ascii=False, sort_keys=True))
    return 0


def run_export(args: argparse.Namespace, _settings: Settings | None) -> int:
    from promptlab.lab.datasets import DatasetError, export_lines

    try:
        sys.stdout.write(export_lines(args.dir, args.name))
    except DatasetError as exc:
        print(f"promptlab dataset export: {exc}", file=sys.stderr)
        return 1
    return 0
