"""Production examples: captured calls, their rewards and reviewers' corrections.

A live, routed ``ExecutionCompleted`` that answered and carries captured variables
(``content.variables``: its prompt has ``[learning] capture = true``, or the sidecar
captures every prompt) becomes one row of ``examples``, keyed by its execution id. The
variables and the answer were redacted by the sidecar before the event was published.

* A counted reward feedback (the prompt's ``[reward] feedback``, user or evaluator) sets
  the row's ``reward`` to the feedback's value on 0..1, before the cost and latency
  weights (they judge variants, not answers), and its ``comment``; a repeat follows
  ``learner.feedback_repeat`` like the arm's statistics.
* A correction (feedback named ``demonstration`` with ``text``) replaces the row's
  answer in place: ``source`` becomes ``correction``, ``reward`` 1.0 and the model's
  answer moves to ``replaced_answer``; later ratings no longer change it.

A correction changes the call's row instead of adding one, so the per-prompt cap (the
newest ``[learning] max_examples`` by event time) and the retention delete exactly the
same rows whatever the batch boundaries: a row that a later batch would no longer find
has, in a single batch, been trimmed with its correction at the end of it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping

import orjson

from promptlab.events.models import ExecutionCompleted
from promptlab.learner.projection.batch import Batch, Execution, event_ms
from promptlab.prompts.sections import DEFAULT_MAX_EXAMPLES
from promptlab.prompts.spec import PromptSpec

CORRECTION_REWARD = 1.0
"""The reward of a reviewer's answer: the best the prompt's scale allows."""


def _json(value: object) -> str:
    """Sorted, compact JSON (orjson: this runs once per captured call on replay)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:  # beyond orjson's limits (a 65-bit integer): the slow, general way
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def subject_hash(subject: str | None) -> str | None:
    """A short, stable hash of a subject (user, session): groups without naming them."""
    if not subject:
        return None
    return hashlib.sha256(subject.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def capture(b: Batch, ev: ExecutionCompleted) -> None:
    """Add the example of a captured, answered live call (nothing otherwise).

    The row names the variant as it served the call, with its version: an old
    version's arm is renamed when its successor registers, an example is not (the pair
    says which content answered, however late the event arrives).
    """
    content = ev.content
    if (
        ev.status != "ok"
        or ev.prompt_id is None
        or ev.variant is None
        or content is None
        or content.variables is None
        or content.output is None
    ):
        return
    b.examples[ev.execution_id] = {
        "id": ev.execution_id,
        "prompt_id": ev.prompt_id,
        "variant": ev.variant,
        "version": ev.version,
        "variables": _json(content.variables),
        "answer": content.output,
        "reward": None,
        "source": "call",
        "created_ms": event_ms(ev),
        "subject_hash": subject_hash(ev.subject),
        "comment": None,
        "replaced_answer": None,
    }


def rate(b: Batch, execution_id: str, value: float, comment: str | None) -> None:
    """A counted reward for a call: its example's reward, unless it was corrected."""
    row = b.examples.get(execution_id)
    if row is not None:
        if row["source"] == "call":
            row["reward"], row["comment"] = value, comment
    elif execution_id in b.example_ids:
        b.example_rewards.append({"b_id": execution_id, "b_reward": value, "b_comment": comment})


def correct(b: Batch, ex: Execution, execution_id: str, text: str, comment: str | None) -> None:
    """A reviewer's answer for a known call replaces its example's answer."""
    del ex  # the call is known (not past the retention); its example says the rest
    row = b.examples.get(execution_id)
    if row is not None:
        if row["source"] == "call":
            row["replaced_answer"] = row["answer"]
        row.update(answer=text, source="correction", reward=CORRECTION_REWARD, comment=comment)
    elif execution_id in b.example_ids:
        b.example_corrections.append(
            {
                "b_id": execution_id,
                "b_text": text,
                "b_reward": CORRECTION_REWARD,
                "b_comment": comment,
            }
        )
    # Else the call was not captured (or its example is gone): nothing to correct.


def caps_from_prompts(prompts: Mapping[str, PromptSpec]) -> Callable[[str], int | None]:
    """``prompt id -> [learning] max_examples`` of the loaded prompts (None for others)."""

    def cap(prompt_id: str) -> int | None:
        spec = prompts.get(prompt_id)
        return None if spec is None else spec.learning.max_examples

    return cap


__all__ = ["DEFAULT_MAX_EXAMPLES", "caps_from_prompts", "capture", "correct", "rate"]
