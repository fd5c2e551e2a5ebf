"""`promptlab prompts history ID [VARIANT]` and `promptlab prompts diff ID VARIANT V1 V2`.

Read from the learner's database (no NATS needed): every version each variant had,
with when and where it came from, its parent, its status and how it did while it ran;
and a unified diff of two versions' model, system, template and params.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TYPE_CHECKING

from promptlab.commands.tables import figure, print_table

if TYPE_CHECKING:
    from promptlab.learner.storage.history import VersionEntry
    from promptlab.settings import Settings


async def collect(settings: Settings, prompt_id: str, variant: str | None) -> list[VersionEntry]:
    from promptlab.reads import open_queries

    async with open_queries(settings) as queries:
        return await queries.history(prompt_id, variant)


def history(args: argparse.Namespace, settings: Settings) -> int:
    entries = asyncio.run(collect(settings, args.id, args.variant))
    if args.json:
        print(
            json.dumps({"prompt_id": args.id, "versions": [e.to_dict() for e in entries]}, indent=2)
        )
        return 0
    if not entries:
        what = f"variant {args.variant!r} of " if args.variant else ""
        print(f"no versions of {what}{args.id!r} in the learner's database", file=sys.stderr)
        return 1
    rows = (
        (
            e.variant,
            e.number,
            e.version[:12],
            e.registered_at.strftime("%Y-%m-%d %H:%M"),
            e.origin,
            e.parent or "-",
            e.status,
            e.executions,
            figure(e.reward_mean),
        )
        for e in entries
    )
    headings = ("VARIANT", "#", "VERSION", "REGISTERED (UTC)", "ORIGIN", "PARENT", "STATUS",
                "CALLS", "REWARD")  # fmt: skip
    print_table(headings, rows, right=("#", "CALLS", "REWARD"))
    return 0


def diff(args: argparse.Namespace, settings: Settings) -> int:
    from promptlab.learner.storage.history import VersionNotFound, diff_versions, find_version

    entries = asyncio.run(collect(settings, args.id, args.variant))
    try:
        old = find_version(entries, args.variant, args.v1)
        new = find_version(entries, args.variant, args.v2)
    except VersionNotFound as exc:
        print(exc, file=sys.stderr)
        return 1
    text = diff_versions(old, new)
    print(text if text else f"v{old.number} and v{new.number} are identical")
    return 0
