"""What continuous breeding takes from production traffic: real failures and a held-out set.

With capture on for a prompt (``[learning] capture``, or ``server.capture_content``) the
examples table (:mod:`learner.examples`) holds its real calls. Breeding uses them twice,
on disjoint rows so the check never grades a mutant on what its mutator was shown:

* :func:`live_failures`: the ``reflect`` operator reads the newest calls rated below
  ``failure_reward`` (variables, answer, the feedback's comment: a user's words or the
  evaluator's reasons) and the corrections (the model's answer and the reviewer's), not
  only the failing ``[[examples]]``;
* :func:`held_out_cases`: the offline check of a bred variant runs on good calls from
  traffic (rated at least ``good_reward``; their answer is the reference), deduplicated
  by variables, once there are ``gate_min_cases`` of them; before that it runs on the
  prompt's ``[[examples]]`` as before.

A prompt that captures nothing has no rows, and breeding behaves as it always did.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from promptlab.lab.experiment import CaseSpec
from promptlab.lab.mutation import FailingCase
from promptlab.learner.examples import Example

ReadExamples = Callable[..., Awaitable[list[Example]]]
"""``learner.examples.read_examples`` bound to a store (``prompt_id, **filters``)."""


def failing_case(example: Example) -> FailingCase:
    """One production example as ``reflect`` shows it to the mutator."""
    if example.source == "correction":
        return FailingCase(
            f"live {example.id} (corrected by a reviewer)",
            example.variables,
            example.replaced_answer,
            example.answer,
            0.0,
            {},
            [example.comment or "a reviewer replaced this answer with the expected one"],
        )
    return FailingCase(
        f"live {example.id}",
        example.variables,
        example.answer,
        None,
        example.reward if example.reward is not None else 0.0,
        {},
        [example.comment] if example.comment else [],
    )


async def live_failures(
    read: ReadExamples, prompt_id: str, *, limit: int, failure_reward: float
) -> list[FailingCase]:
    """The newest ``limit`` real failures of a prompt: low-rewarded calls and corrections."""
    if limit <= 0:
        return []
    low = await read(prompt_id, max_reward=failure_reward, source="call", limit=limit)
    corrected = await read(prompt_id, source="correction", limit=limit)
    found = [e for e in low if e.reward is not None and e.reward < failure_reward]
    found += corrected
    found.sort(key=lambda e: (e.created_ms, e.id), reverse=True)
    return [failing_case(e) for e in found[:limit]]


async def held_out_cases(
    read: ReadExamples,
    prompt_id: str,
    *,
    min_cases: int,
    max_cases: int,
    good_reward: float,
) -> list[CaseSpec]:
    """Good calls from traffic as check cases (newest first, one per distinct set of
    variables), or ``[]`` while there are fewer than ``min_cases``."""
    if min_cases <= 0:
        return []
    good = await read(prompt_id, min_reward=good_reward, source="call", limit=max_cases * 4)
    cases: list[CaseSpec] = []
    seen: set[str] = set()
    for example in good:
        key = json.dumps(example.variables, sort_keys=True, ensure_ascii=False)
        if key in seen:
            continue
        seen.add(key)
        cases.append(
            CaseSpec(id=f"live-{example.id}", inputs=example.variables, expected=example.answer)
        )
        if len(cases) >= max_cases:
            break
    return cases if len(cases) >= min_cases else []


__all__ = ["ReadExamples", "failing_case", "held_out_cases", "live_failures"]
