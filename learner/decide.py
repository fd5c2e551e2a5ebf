"""The seam between the learner service and the promotion policy.

A :data:`Policy` looks at one prompt's :class:`PromptView` with a generator seeded from
the stream position and returns the decision event to publish, or None.

:func:`default_policy` is :func:`learner.policy.rules.decide` on the view's
:class:`~learner.policy.rules.PromptState` (built by :func:`learner.analysis.prompt_state`):
there is one policy, the one ``bench/simulation.py`` validates. The event's id derives
from the prompt, the decision, the trigger sequence and the variant, and its time is
the prompt's newest event time, so a learner that decides again after a crash
publishes the very same event (and JetStream drops the copy).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np

from promptlab.events.models import BaseEvent
from promptlab.learner.analysis import prompt_state
from promptlab.learner.policy.rules import decide
from promptlab.learner.storage.view import PromptView

Policy = Callable[[PromptView, np.random.Generator, int], BaseEvent | None]
"""``(view, rng, trigger_sequence) -> decision event or None``."""


def default_policy(
    view: PromptView, rng: np.random.Generator, trigger_sequence: int
) -> BaseEvent | None:
    """The policy's decision for this prompt now, as the event to publish (or None).

    With an ``evaluation_window`` the view's counters, and so the decision, cover only
    the window (see :func:`learner.storage.view.load_view`).
    """
    decision = decide(prompt_state(view), view.config, rng)
    if decision is None:
        return None
    occurred_at = (
        datetime.fromtimestamp(view.last_event_ms / 1000, UTC) if view.last_event_ms else None
    )
    return decision.to_event(view.prompt_id, trigger_sequence, occurred_at=occurred_at)
