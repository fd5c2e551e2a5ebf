"""What an OpenAI-compatible ``/embeddings`` answer must be before promptlab uses it.

:meth:`providers.Providers.embed` calls the endpoint; this checks the answer, so that
every way it can be unusable is one :class:`~providers.errors.BadResponse`.
"""

from __future__ import annotations

import math
from typing import Any

from promptlab.providers.errors import BadResponse

JsonDict = dict[str, Any]

MAX_EMBEDDING_DIM = 16_384
"""Longest embedding accepted (the largest hosted models return 3,072 numbers)."""


def embedding_rows(data: JsonDict, count: int, what: str) -> list[list[float]]:
    """The ``count`` vectors of an OpenAI ``/embeddings`` answer, ordered by ``index``."""
    rows = data.get("data")
    if not isinstance(rows, list) or len(rows) != count:
        raise BadResponse(f"{what} returned no embedding list of {count} rows")
    ordered: list[list[float] | None] = [None] * count
    dim = -1
    for position, row in enumerate(rows):
        index = row.get("index", position) if isinstance(row, dict) else None
        vector = row.get("embedding") if isinstance(row, dict) else None
        if not isinstance(index, int) or not 0 <= index < count or ordered[index] is not None:
            raise BadResponse(f"{what} returned an embedding row with a bad index")
        if not isinstance(vector, list) or not 0 < len(vector) <= MAX_EMBEDDING_DIM:
            raise BadResponse(f"{what} returned an embedding that is not a list of numbers")
        if dim not in (-1, len(vector)):
            raise BadResponse(f"{what} returned embeddings of different lengths")
        dim = len(vector)
        try:
            floats = [float(x) for x in vector]
        except (TypeError, ValueError):
            raise BadResponse(f"{what} returned an embedding that is not numbers") from None
        if not all(math.isfinite(x) for x in floats):
            raise BadResponse(f"{what} returned an embedding with a value that is not finite")
        ordered[index] = floats
    return [row for row in ordered if row is not None]
