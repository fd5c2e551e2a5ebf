"""The learner's store as the CLI and ``serve``'s ``/admin`` read it.

:func:`open_queries` gives a command its :class:`~learner.queries.Queries` for one
answer. :class:`StoreReads` is the long-lived one of ``serve``: it opens the store on the
first ``/admin`` read (a sidecar that is never asked touches no database), keeps it for
every later request, and closes it in the app's ``cleanup_ctx``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from promptlab.prompts import PromptFileError, PromptSpec, load_prompt_dir

if TYPE_CHECKING:
    from aiohttp import web

    from promptlab.learner.queries import Queries
    from promptlab.settings import Settings


def prompt_files(settings: Settings, *, strict: bool = False) -> dict[str, PromptSpec]:
    """The prompt files of ``settings.prompts.dir`` ({} when it does not exist). A file
    with errors: printed and exit 2 when ``strict`` (a command), skipped otherwise."""
    try:
        return load_prompt_dir(settings.prompts.dir)
    except PromptFileError as exc:
        if not strict:
            return {}
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        raise SystemExit(2) from None
    except FileNotFoundError:
        return {}


def _queries(settings: Settings, store: Any, *, strict: bool) -> Queries:
    from promptlab.learner.queries import Queries

    return Queries(
        store,
        promotion=settings.learner.promotion,
        seed=settings.learner.seed,
        prompts=lambda: prompt_files(settings, strict=strict),
    )


@asynccontextmanager
async def open_queries(settings: Settings) -> AsyncIterator[Queries]:
    """The store of ``settings.storage.url``, created or migrated, for one command."""
    from promptlab.learner.storage.store import Store

    store = Store(settings.storage.url)
    try:
        await store.create()
        yield _queries(settings, store, strict=True)
    finally:
        await store.close()


class StoreReads:
    """``serve``'s reads of the learner's store, over one store opened on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._queries: Queries | None = None
        self._lock = asyncio.Lock()

    async def queries(self) -> Queries:
        if self._queries is None:
            async with self._lock:
                if self._queries is None:
                    from promptlab.learner.storage.store import Store

                    store = Store(self.settings.storage.url)
                    try:
                        await store.create()
                    except BaseException:
                        await store.close()
                        raise
                    self._queries = _queries(self.settings, store, strict=False)
        return self._queries

    async def analytics(
        self, prompt_id: str, interval: str, start: datetime | None, end: datetime | None
    ) -> dict[str, Any]:
        return await (await self.queries()).analytics_json(prompt_id, interval, start, end)

    async def history(self, prompt_id: str, variant: str | None) -> dict[str, Any]:
        return await (await self.queries()).history_json(prompt_id, variant)

    async def close(self) -> None:
        if self._queries is not None:
            await self._queries.store.close()
            self._queries = None

    async def cleanup_ctx(self, app: web.Application) -> AsyncIterator[None]:
        """For ``app.cleanup_ctx``: the store is closed when the app stops."""
        yield
        await self.close()
