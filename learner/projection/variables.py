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
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from learner.storage import schema as t
from learner.storage.schema import MAX_VALUES_PER_HOUR, OTHER_VALUE
from learner.storage.values import value_text
from prompts.spec import MAX_VARIABLES

HOUR_MS = 3_600_000
_MAX_NAME = 100  # the ``variable`` column's width

Cell = tuple[str, int, str, str]
"""``(prompt_id, hour, variant, variable)``."""


class ValueCounts:
    """One batch's additions to ``variable_values``, with the distinct-values bound."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, int, str, str, str], int] = {}
        self.known: dict[Cell, set[str]] = {}
        """Distinct values with a row of their own, per cell (stored ones prefetched)."""

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
        """Count one execution's recorded values."""
        counts, known = self.counts, self.known
        for i, (name, value) in enumerate(values.items()):
            if i >= MAX_VARIABLES:
                break
            if len(name) > _MAX_NAME:
                continue
            try:
                text = value_text(value)
            except TypeError:  # unhashable: not a value the event model lets through
                continue
            if text is None:
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
            counts[key] = counts.get(key, 0) + 1

    def rekey(self, prompt_id: str, name: str, archived: str) -> None:
        """A variant's old version became ``archived``: move what this batch holds for it."""
        for key in [k for k in self.counts if k[0] == prompt_id and k[2] == name]:
            self.counts[(prompt_id, key[1], archived, *key[3:])] = self.counts.pop(key)
        for cell in [c for c in self.known if c[0] == prompt_id and c[2] == name]:
            self.known[(prompt_id, cell[1], archived, cell[3])] = self.known.pop(cell)

    def rows(self) -> list[dict[str, Any]]:
        """Rows to add to ``variable_values`` (in key order, for a stable write)."""
        return [
            {
                "prompt_id": p,
                "hour": h,
                "variant": v,
                "variable": n,
                "value": value,
                "count": c,
            }
            for (p, h, v, n, value), c in sorted(self.counts.items())
        ]


_vv = t.variable_values
_SELECT_KNOWN = select(
    _vv.c.prompt_id, _vv.c.hour, _vv.c.variant, _vv.c.variable, _vv.c.value
).where(
    _vv.c.prompt_id.in_(bindparam("prompts", expanding=True)),
    _vv.c.hour.in_(bindparam("hours", expanding=True)),
    _vv.c.value != OTHER_VALUE,
)
