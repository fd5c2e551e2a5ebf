"""Reading production examples: a prompt's captured calls and corrections, filtered.

The ``examples`` table (:data:`learner.storage.schema.examples`) is projected from the
event stream by :mod:`learner.projection.handlers.examples`; this module is how every
other part reads it (datasets from traffic, demonstration pools, reflection on real
failures). Rows come back as frozen :class:`Example` values, newest first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import select

from promptlab.events.kinds import ExampleSource
from promptlab.learner.storage import schema as t
from promptlab.learner.storage.store import Store

__all__ = ["Example", "read_examples"]


@dataclass(frozen=True, slots=True)
class Example:
    """One production example: what a call was asked, what it answered, how it did."""

    id: str
    """The execution id of the call."""
    prompt_id: str
    variant: str
    version: str | None
    variables: dict[str, Any]
    """The call's variables (redacted, strings cut to ``server.capture_max_chars``)."""
    answer: str
    """The model's answer, or the reviewer's for a correction."""
    reward: float | None
    """The reward feedback on 0..1 (1.0 for a correction); None: not rated."""
    source: ExampleSource
    created_ms: int
    """The call's ``occurred_at`` in milliseconds since the epoch (event time)."""
    subject_hash: str | None
    comment: str | None = None
    """The comment of the feedback that set the reward (evaluator reasons, a user's words)."""
    replaced_answer: str | None = None
    """For a correction: the model's own answer that it replaced."""

    @property
    def created_at(self) -> datetime:
        """:attr:`created_ms` as an aware UTC datetime."""
        return datetime.fromtimestamp(self.created_ms / 1000, UTC)

    @classmethod
    def from_mapping(cls, row: Any) -> Example:
        variables = json.loads(row["variables"])
        return cls(
            id=row["id"],
            prompt_id=row["prompt_id"],
            variant=row["variant"],
            version=row["version"],
            variables=variables if isinstance(variables, dict) else {},
            answer=row["answer"],
            reward=None if row["reward"] is None else float(row["reward"]),
            source=row["source"],
            created_ms=int(row["created_ms"]),
            subject_hash=row["subject_hash"],
            comment=row["comment"],
            replaced_answer=row["replaced_answer"],
        )


def _ms(moment: datetime | int | None) -> int | None:
    if moment is None or isinstance(moment, int):
        return moment
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


async def read_examples(
    store: Store,
    prompt_id: str,
    *,
    min_reward: float | None = None,
    max_reward: float | None = None,
    variant: str | None = None,
    since: datetime | int | None = None,
    until: datetime | int | None = None,
    source: ExampleSource | None = None,
    rated: bool | None = None,
    limit: int | None = None,
    order: Literal["newest", "oldest"] = "newest",
) -> list[Example]:
    """A prompt's production examples, newest first (``order="oldest"``: oldest first).

    ``min_reward`` / ``max_reward`` bound the reward (inclusive; either one leaves out
    unrated examples); ``rated`` keeps only rated (True) or unrated (False) ones;
    ``since`` (inclusive) and ``until`` (exclusive) bound the call's event time
    (aware datetimes, naive ones are UTC, or epoch milliseconds); ``source`` keeps the
    model's answers (``call``) or the reviewers' (``correction``). Ties in time are
    ordered by id, so the same table always reads the same.
    """
    ex = t.examples
    query = select(ex).where(ex.c.prompt_id == prompt_id)
    if min_reward is not None:
        query = query.where(ex.c.reward >= min_reward)
    if max_reward is not None:
        query = query.where(ex.c.reward <= max_reward)
    if rated is not None:
        query = query.where(ex.c.reward.is_not(None) if rated else ex.c.reward.is_(None))
    if variant is not None:
        query = query.where(ex.c.variant == variant)
    if (start := _ms(since)) is not None:
        query = query.where(ex.c.created_ms >= start)
    if (end := _ms(until)) is not None:
        query = query.where(ex.c.created_ms < end)
    if source is not None:
        query = query.where(ex.c.source == source)
    if order == "newest":
        query = query.order_by(ex.c.created_ms.desc(), ex.c.id.desc())
    else:
        query = query.order_by(ex.c.created_ms, ex.c.id)
    if limit is not None:
        query = query.limit(limit)
    async with store.engine.connect() as conn:
        rows = await conn.execute(query)
        return [Example.from_mapping(row._mapping) for row in rows]
