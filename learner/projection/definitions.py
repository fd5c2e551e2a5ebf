"""Prompts defined at run time (``PromptRegistered``), as the projection keeps them.

A prompt file gives the learner a prompt's reward rule and promotion overrides at
start. A prompt created through the admin API has no file: its definition arrives as a
``PromptRegistered`` event, and the projection takes it *in stream order*, in the same
transaction as everything else, into table ``prompt_definitions``. So feedback after
the event is rewarded by the new rule, feedback before it by the old one, and
``promptlab replay`` rebuilds exactly that. A prompt file of the same id wins (its rule
is the one the learner was started with).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from promptlab.events.bus import Delivery
from promptlab.events.models import PromptRegistered
from promptlab.prompts.definition import spec_from_event
from promptlab.prompts.errors import PromptError
from promptlab.prompts.spec import PromptSpec

log = logging.getLogger(__name__)


def definition_row(
    sequence: int, occurred_ms: int, event: PromptRegistered
) -> tuple[PromptSpec, dict[str, Any]] | None:
    """The prompt ``event`` defines and its ``prompt_definitions`` row; None (logged)
    when this version of promptlab refuses the definition."""
    try:
        spec = spec_from_event(event)
    except (ValidationError, PromptError) as exc:
        log.warning("ignoring the definition of %s at %d: %s", event.prompt_id, sequence, exc)
        return None
    row = {
        "prompt_id": event.prompt_id,
        "sequence": sequence,
        "occurred_ms": occurred_ms,
        "version": event.version,
        "origin": event.origin,
        "actor": event.actor,
        "spec": json.dumps(event.spec, sort_keys=True, ensure_ascii=False),
    }
    return spec, row


async def check_off_the_loop(deliveries: Sequence[Delivery]) -> None:
    """Validate the definitions of a batch once in a thread, before the projection takes
    them on the event loop (which in ``serve`` is also the sidecar's). Their templates'
    checks, rendering within the bounds included, are cached, so :func:`definition_row`
    then renders nothing; a definition built to exhaust the bounds costs its CPU there.
    Only a warm-up: what the projection does with the event is unchanged."""
    for delivery in deliveries:
        if isinstance(delivery.event, PromptRegistered):
            await asyncio.to_thread(_warm, delivery.event)


def _warm(event: PromptRegistered) -> None:
    try:
        spec_from_event(event)
    except (ValidationError, PromptError):
        pass  # reported when the projection takes it


def specs_from_rows(rows: Iterable[Mapping[Any, Any]]) -> dict[str, PromptSpec]:
    """The prompts stored in ``prompt_definitions`` (a row that no longer validates is
    left out, with a warning)."""
    out = {}
    for row in rows:
        try:
            out[row["prompt_id"]] = PromptSpec.model_validate(json.loads(row["spec"]))
        except (ValidationError, PromptError, ValueError) as exc:
            log.warning("stored definition of %s not usable: %s", row["prompt_id"], exc)
    return out
