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

from promptlab.commands.tables import name_width

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
    width = name_width(e.variant for e in entries)
    parent = name_width((e.parent or "-" for e in entries), least=len("PARENT"))
    print(
        f"{'VARIANT':<{width}}{'#':>3}  {'VERSION':<14}{'REGISTERED (UTC)':<18}{'ORIGIN':<10}"
        f"{'PARENT':<{parent}}{'STATUS':<12}{'CALLS':>7}{'REWARD':>8}"
    )
    for e in entries:
        reward = "-" if e.reward_mean is None else f"{e.reward_mean:.3f}"
        print(
            f"{e.variant:<{width}}{e.number:>3}  {e.version[:12]:<14}"
            f"{e.registered_at.strftime('%Y-%m-%d %H:%M'):<18}{e.origin:<10}"
            f"{e.parent or '-':<{parent}}{e.status:<12}{e.executions:>7}{reward:>8}"
        )
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
