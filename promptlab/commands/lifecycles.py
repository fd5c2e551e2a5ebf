"""The lifecycle of each variant, for the listings that hide archived variants.

A prompt file gives each variant's starting ``status``; after that operators move it
(``promptlab prompts archive``, the admin API, the TUI) and the learner records where
it is. Listings read the learner's database when there is one (never creating it) and
fall back to the files' ``status`` otherwise.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from promptlab.prompts import PromptSpec

if TYPE_CHECKING:
    from promptlab.settings import Settings

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 3.0

Lifecycles = Mapping[tuple[str, str], str]
"""``(prompt id, variant) -> lifecycle`` as the learner recorded it."""


async def _read(url: str) -> dict[tuple[str, str], str]:
    from sqlalchemy import select

    from promptlab.learner.storage import schema as t
    from promptlab.learner.storage.store import Store

    store = Store(url)
    try:
        v = t.variants
        async with store.engine.connect() as conn:
            rows = await conn.execute(select(v.c.prompt_id, v.c.variant, v.c.lifecycle))
            return {(r.prompt_id, r.variant): str(r.lifecycle) for r in rows}
    finally:
        await store.close()


def learner_lifecycles(settings: Settings) -> dict[tuple[str, str], str]:
    """The learner's lifecycle of every variant it knows; empty without a database."""
    return read_lifecycles(settings) or {}


def read_lifecycles(settings: Settings) -> dict[tuple[str, str], str] | None:
    """Like :func:`learner_lifecycles`, but None when a database exists and cannot be read."""
    from sqlalchemy.engine import make_url

    url = settings.storage.url
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        return {}
    try:
        return asyncio.run(asyncio.wait_for(_read(url), READ_TIMEOUT_S))
    except Exception as exc:  # no learner database yet, or not reachable: files only
        log.debug("learner lifecycles not read: %s", exc)
        return None


def known_variants(settings: Settings) -> dict[str, set[str]] | None:
    """Prompt id -> variant names the prompt files and the learner's database know.

    None when the learner's database exists but cannot be read: then nobody here can
    tell what exists, and the learner is left to judge.
    """
    from promptlab.prompts import PromptFileError, load_prompt_dir

    stored = read_lifecycles(settings)
    if stored is None:
        return None
    known: dict[str, set[str]] = {}
    try:
        files = load_prompt_dir(settings.prompts.dir)
    except (PromptFileError, OSError):  # a broken or absent dir: the database still counts
        files = {}
    for prompt in files.values():
        known.setdefault(prompt.id, set()).update(v.name for v in prompt.variants)
    for prompt_id, variant in stored:
        known.setdefault(prompt_id, set()).add(variant)
    return known


def unknown_target(
    known: Mapping[str, set[str]], prompt_id: str, variant: str | None
) -> str | None:
    """Why a command about ``prompt_id`` (and ``variant``) names nothing that exists, or None."""
    if prompt_id not in known:
        exists = ", ".join(sorted(known)) or "none (no prompt files, no learner database yet)"
        return f"no prompt {prompt_id!r}; prompts that exist: {exists}"
    if variant is not None and variant not in known[prompt_id]:
        return f"no variant {variant!r} in {prompt_id!r}; its variants: " + ", ".join(
            sorted(known[prompt_id])
        )
    return None


def statuses(prompt: PromptSpec, known: Lifecycles) -> dict[str, str]:
    """Each variant's lifecycle: the learner's when it has one, else the file's."""
    return {v.name: known.get((prompt.id, v.name), v.status) for v in prompt.variants}


def hidden_note(count: int) -> str:
    """The line that says archived variants were left out."""
    return f"({count} archived variant{'s' if count != 1 else ''} hidden: --all shows them)"
