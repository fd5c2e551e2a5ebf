"""Text the sidecar refuses at its door, before it can reach an event, a header or SQL.

* Lone UTF-16 surrogates (``"\\ud800"`` escaped in JSON) decode into a Python ``str``
  but cannot be encoded as UTF-8: an event holding one can be neither published nor
  written to the outbox. orjson refuses them (and invalid UTF-8); the standard-library
  fallback in :mod:`sidecar.codec` accepts them, so :func:`check_decoded` runs there.
* Integers beyond 64 bits: nothing in the OpenAI API or a feedback value needs them,
  and ``float()`` of one raises ``OverflowError``. (orjson reads the longest of them as
  a float, ``1e30``: an ``integer`` variable refuses a float beyond 2**53.)
* Numbers beyond a double (``1e400`` reads as infinity), ``NaN`` and ``Infinity``.
* NUL characters in a subject, a feedback name, an execution id or a variable value:
  PostgreSQL text cannot store them and they end strings early in C libraries.
"""

from __future__ import annotations

import math
from typing import Any

from promptlab.sidecar.errors import BadRequest

INT_LIMIT = 2**63
"""Integers in a request body must lie within ``(-INT_LIMIT, INT_LIMIT)``."""


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def check_decoded(value: Any) -> None:
    """Raise ``ValueError`` for a lone surrogate, a >64-bit integer or a number beyond a
    double anywhere in ``value``.

    Walks a parsed JSON document (only the documents orjson could not parse come here).
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _has_surrogate(item):
                raise ValueError("a string holds a lone UTF-16 surrogate (not valid Unicode)")
        elif isinstance(item, bool):
            continue
        elif isinstance(item, int):
            if not -INT_LIMIT < item < INT_LIMIT:
                raise ValueError("an integer is out of range (at most 64 bits)")
        elif isinstance(item, float):
            if not math.isfinite(item):  # 1e400 reads as infinity
                raise ValueError("a number is out of range (beyond a double)")
        elif isinstance(item, dict):
            for key, sub in item.items():
                stack.append(key)
                stack.append(sub)
        elif isinstance(item, list):
            stack.extend(item)


def check_text(value: str, param: str) -> str:
    """``value`` unchanged, or 400 when it holds NUL or a lone surrogate."""
    if "\x00" in value:
        raise BadRequest(f"'{param}' must not contain NUL characters", param=param)
    if _has_surrogate(value):
        raise BadRequest(f"'{param}' is not valid Unicode (lone surrogate)", param=param)
    return value


def check_values(values: Any, param: str) -> None:
    """400 when any string inside ``values`` (an object of variables) holds NUL."""
    stack = [values]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            check_text(item, param)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
