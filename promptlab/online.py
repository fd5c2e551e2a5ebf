"""Wiring of online evaluation into the learner process (``lab.online``)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING

from promptlab.events.bus import EventBus
from promptlab.prompts import PromptSpec

if TYPE_CHECKING:
    from promptlab.lab.online import OnlineEvaluator
    from promptlab.settings import Settings


@contextlib.asynccontextmanager
async def online_evaluation(
    settings: Settings, bus: EventBus, prompts: Mapping[str, PromptSpec]
) -> AsyncIterator[OnlineEvaluator | None]:
    """Run the online evaluator while inside, when some prompt has ``[evaluation]``."""
    if not any(p.evaluation is not None for p in prompts.values()):
        yield None
        return
    from promptlab.lab.online import OnlineEvaluator
    from promptlab.models import make_providers

    async with make_providers(settings) as client:
        evaluator = OnlineEvaluator(bus, prompts, client)
        evaluator.start()
        try:
            yield evaluator
        finally:
            await evaluator.stop()
