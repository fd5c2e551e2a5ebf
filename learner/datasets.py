"""Datasets from traffic: production examples drawn into a lab dataset.

:func:`create_dataset` reads a prompt's production examples (:mod:`learner.examples`)
with the filters of a :class:`DatasetQuery`, optionally keeps one example per distinct
set of variables (``dedupe``), draws a seeded sample (optionally stratified), and writes
the result as a lab dataset (:mod:`lab.datasets`). Each case's ``inputs`` are the
call's variables; its ``expected`` is the answer when that answer is good (a correction,
or a reward of at least ``good_reward``), else None: a judge-only case, which still
tests the prompt on a real input.

Stratified sampling is balanced: strata take turns (in a seeded random order within
each), so a rare stratum (the few wrong answers, a rare category) is represented as far
as it can be, not in proportion to its rarity. The selection is a pure function of the
examples and the seed (:func:`select_examples`): the same table draws the same dataset.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from promptlab.lab.datasets import DatasetInfo, check_name, write_dataset
from promptlab.learner.examples import Example, read_examples
from promptlab.learner.storage.store import Store

GOOD_REWARD = 0.8
"""Default reward from which an example's answer is a good ``expected`` answer."""
REWARD_STRATA = ("correction", "good", "poor", "unrated")
"""The strata of ``stratify_by = "reward"``."""


class DatasetQueryError(ValueError):
    """Filters that cannot be combined, or that select nothing."""


@dataclass(frozen=True, slots=True)
class DatasetQuery:
    """Which production examples become a dataset, and how they are drawn."""

    prompt_id: str
    since: datetime | None = None
    """Calls at or after this time (event time)."""
    until: datetime | None = None
    """Calls before this time."""
    variant: str | None = None
    min_reward: float | None = None
    max_reward: float | None = None
    sample: int | None = None
    """Draw at most this many (seeded); None keeps every example that matches."""
    stratify_by: str | None = None
    """``reward`` (corrections, good, poor, unrated) or a variable's name."""
    dedupe: bool = False
    """One example per distinct set of variables: a correction first, then the best
    reward, then the newest."""
    good_reward: float = GOOD_REWARD
    """A rated answer at or above this is the case's ``expected`` answer."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.min_reward is not None and self.max_reward is not None:
            raise DatasetQueryError("give --min-reward or --max-reward, not both")
        if self.sample is not None and self.sample < 1:
            raise DatasetQueryError("sample must be at least 1")
        if self.stratify_by is not None and self.sample is None:
            raise DatasetQueryError("stratify-by needs a sample size to draw")

    def to_json(self) -> dict[str, Any]:
        """The filters as JSON (a dataset's description records them)."""
        out = asdict(self)
        for key in ("since", "until"):
            if out[key] is not None:
                out[key] = out[key].isoformat()
        return {k: v for k, v in out.items() if v is not None and v is not False}


def _variables_key(example: Example) -> str:
    return json.dumps(example.variables, sort_keys=True, ensure_ascii=False)


def _stratum(example: Example, by: str, good: float) -> str:
    if by != "reward":
        return json.dumps(example.variables.get(by), sort_keys=True, ensure_ascii=False)
    if example.source == "correction":
        return "correction"
    if example.reward is None:
        return "unrated"
    return "good" if example.reward >= good else "poor"


def _dedupe(examples: Sequence[Example]) -> list[Example]:
    best: dict[str, Example] = {}
    for example in examples:
        key = _variables_key(example)
        kept = best.get(key)
        if kept is None or _rank(example) > _rank(kept):
            best[key] = example
    return list(best.values())


def _rank(example: Example) -> tuple[int, float, int, str]:
    reward = -1.0 if example.reward is None else example.reward
    return (example.source == "correction", reward, example.created_ms, example.id)


def select_examples(examples: Sequence[Example], query: DatasetQuery) -> list[Example]:
    """The examples a query draws from those its filters matched, oldest first."""
    pool = _dedupe(examples) if query.dedupe else list(examples)
    pool.sort(key=lambda e: (e.created_ms, e.id))
    if query.sample is not None and query.sample < len(pool):
        rng = random.Random(query.seed)
        if query.stratify_by is None:
            pool = rng.sample(pool, query.sample)
        else:
            strata: dict[str, list[Example]] = {}
            for example in pool:
                key = _stratum(example, query.stratify_by, query.good_reward)
                strata.setdefault(key, []).append(example)
            queues = [rng.sample(items, len(items)) for _, items in sorted(strata.items())]
            chosen: list[Example] = []
            while len(chosen) < query.sample:
                for queue in queues:
                    if queue and len(chosen) < query.sample:
                        chosen.append(queue.pop())
            pool = chosen
        pool.sort(key=lambda e: (e.created_ms, e.id))
    return pool


def to_case(example: Example, good_reward: float = GOOD_REWARD) -> dict[str, Any]:
    """One example in the lab's case shape."""
    good = example.source == "correction" or (
        example.reward is not None and example.reward >= good_reward
    )
    return {
        "id": example.id,
        "inputs": example.variables,
        "expected": example.answer if good else None,
        "min_quality": None,
    }


async def dataset_cases(store: Store, query: DatasetQuery) -> list[dict[str, Any]]:
    """The cases ``query`` draws from the prompt's production examples."""
    examples = await read_examples(
        store,
        query.prompt_id,
        min_reward=query.min_reward,
        max_reward=query.max_reward,
        variant=query.variant,
        since=query.since,
        until=query.until,
        order="oldest",
    )
    return [to_case(e, query.good_reward) for e in select_examples(examples, query)]


async def create_dataset(
    store: Store,
    directory: str | os.PathLike[str],
    name: str,
    query: DatasetQuery,
    *,
    replace: bool = False,
    now: datetime | None = None,
) -> DatasetInfo:
    """Draw ``query`` from the store and write it as dataset ``name`` in ``directory``.

    Raises :class:`DatasetQueryError` when nothing matches (an empty dataset is a
    mistake, not a result) and ``lab.datasets.DatasetError`` for a bad name or an
    existing dataset (unless ``replace``).
    """
    check_name(name)
    cases = await dataset_cases(store, query)
    if not cases:
        raise DatasetQueryError(
            f"no production examples of prompt {query.prompt_id!r} match: is "
            "[learning] capture = true for it, and has it served calls since?"
        )
    info = DatasetInfo(
        name=name,
        prompt_id=query.prompt_id,
        created_at=now or datetime.now(UTC),
        cases=len(cases),
        with_expected=sum(1 for c in cases if c["expected"] is not None),
        filters=query.to_json(),
    )
    write_dataset(directory, info, cases, replace=replace)
    return info
