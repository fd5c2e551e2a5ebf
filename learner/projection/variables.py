"""Counts of recorded variable values, per prompt, variant, variable, hour and value.

An execution's ``variable_values`` (what its prompt lets analytics record; the sidecar
decides, see :mod:`prompts.analytics`) add one to a row of
:data:`learner.storage.schema.variable_values` per variable. :class:`ValueCounts` holds
one batch's additions; the projection writes them with its other aggregates, in the
same transaction, as integer upserts, so totals do not depend on batch boundaries.

The table stays bounded whatever arrives: values are stored as JSON text with strings
cut to ``prompts.MAX_VALUE_CHARS``, at most ``MAX_VARIABLES`` variables per execution
count, and only the first :data:`~learner.storage.schema.MAX_VALUES_PER_HOUR` distinct
values of a variable per prompt, variant and hour (in stream order) get their own row;
later new ones count under :data:`~learner.storage.schema.OTHER_VALUE`. Stream order
decides, so a replay in other batches keeps exactly the same rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import islice
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from promptlab.learner.storage import schema as t
from promptlab.learner.storage.schema import MAX_VALUES_PER_HOUR, OTHER_VALUE
from promptlab.learner.storage.values import value_text
from promptlab.prompts.spec import MAX_VARIABLES

HOUR_MS = 3_600_000
_MAX_NAME = 100  # the ``variable`` column's width

Cell = tuple[str, int, str, str]
"""``(prompt_id, hour, variant, variable)``."""


class ValueCounts:
    """One batch's additions to ``variable_values``, with the distinct-values bound.

    :meth:`add` only counts raw values (one dict update per value: it runs for every
    execution); :meth:`rows` turns them into stored values once per batch. The bound
    depends only on the order in which each value first appeared, which the insertion
    order of the raw counts keeps, so deciding it at the end of the batch gives what
    deciding it call by call would.
    """

    def __init__(self) -> None:
        self.raw: dict[tuple[str, int, str, str, type, Any], int] = {}
        """``(prompt, hour, variant, variable, type, value)`` -> calls, in order of first use."""
        self.known: dict[Cell, set[str]] = {}
        """Distinct stored values with a row of their own, per cell (prefetched)."""

    async def prefetch(self, conn: AsyncConnection, cells: Iterable[tuple[str, int]]) -> None:
        """Load the distinct values already stored for these ``(prompt, hour)`` pairs."""
        pairs = set(cells)
        if not pairs:
            return
        prompts = sorted({p for p, _ in pairs})
        hours = sorted({h for _, h in pairs})
        for prompt_id, hour, variant, variable, value in await conn.execute(
            _SELECT_KNOWN, {"prompts": prompts, "hours": hours}
        ):
            if (prompt_id, int(hour)) in pairs:
                cell = (prompt_id, int(hour), variant, variable)
                self.known.setdefault(cell, set()).add(value)

    def add(self, prompt_id: str, variant: str, hour: int, values: Mapping[str, Any]) -> None:
        """Count one execution's recorded values (strings, booleans and numbers; the type
        is part of the key, so ``true`` and ``1`` stay apart)."""
        raw = self.raw
        items: Iterable[tuple[str, Any]] = values.items()
        if len(values) > MAX_VARIABLES:
            items = islice(items, MAX_VARIABLES)
        for name, value in items:
            kind = value.__class__
            if kind in _SCALARS:
                key = (prompt_id, hour, variant, name, kind, value)
                raw[key] = raw.get(key, 0) + 1

    def rekey(self, prompt_id: str, name: str, archived: str) -> None:
        """A variant's old version became ``archived``: move what this batch holds for it
        (each cell's values keep their order)."""
        for key in [k for k in self.raw if k[0] == prompt_id and k[2] == name]:
            self.raw[(prompt_id, key[1], archived, *key[3:])] = self.raw.pop(key)
        for cell in [c for c in self.known if c[0] == prompt_id and c[2] == name]:
            self.known[(prompt_id, cell[1], archived, cell[3])] = self.known.pop(cell)

    def rows(self) -> list[dict[str, Any]]:
        """Rows to add to ``variable_values``, values past the bound counted as other."""
        counts: dict[tuple[str, int, str, str, str], int] = {}
        known = self.known
        for (prompt_id, hour, variant, name, _kind, value), n in self.raw.items():
            text = value_text(value)
            if text is None or len(name) > _MAX_NAME:
                continue
            cell = (prompt_id, hour, variant, name)
            seen = known.get(cell)
            if seen is None:
                seen = known[cell] = set()
            if text not in seen:
                if len(seen) >= MAX_VALUES_PER_HOUR:
                    text = OTHER_VALUE
                else:
                    seen.add(text)
            key = (*cell, text)
            counts[key] = counts.get(key, 0) + n
        return [
            {"prompt_id": p, "hour": h, "variant": v, "variable": n, "value": text, "count": c}
            for (p, h, v, n, text), c in sorted(counts.items())
        ]


_SCALARS = frozenset({str, bool, int, float})


_vv = t.variable_values
_SELECT_KNOWN = select(
    _vv.c.prompt_id, _vv.c.hour, _vv.c.variant, _vv.c.variable, _vv.c.value
).where(
    _vv.c.prompt_id.in_(bindparam("prompts", expanding=True)),
    _vv.c.hour.in_(bindparam("hours", expanding=True)),
    _vv.c.value != OTHER_VALUE,
)
