"""JSON at the sidecar's door: :mod:`providers.codec` plus the screening of input.

orjson refuses lone surrogates, integers beyond 64 bits and numbers too large for a
double, which nothing downstream can carry; where it refuses, the standard library
parses (and words the error) and :func:`sidecar.inputs.check_decoded` refuses those
values with a clear message. ``NaN`` and ``Infinity``, which are not JSON, are refused
as orjson does.
"""

from __future__ import annotations

import json
from typing import Any

from promptlab.providers.codec import dumps, orjson
from promptlab.sidecar.inputs import check_decoded

__all__ = ["dumps", "loads"]


def loads(raw: bytes | str) -> Any:
    """Parse JSON (``ValueError`` when it is not, or when it holds a lone surrogate or an
    integer beyond 64 bits)."""
    if orjson is not None:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    value = json.loads(raw, parse_constant=_not_json)
    check_decoded(value)
    return value


def _not_json(name: str) -> Any:
    # NaN, Infinity and -Infinity: Python's json reads them, JSON (and orjson) does not.
    raise ValueError(f"{name} is not a JSON value")
