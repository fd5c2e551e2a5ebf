"""How a recorded variable value is stored in ``variable_values.value``, and read back.

JSON text, so the type survives (``"3"`` the string vs ``3`` the number) and the
:data:`~learner.storage.schema.OTHER_VALUE` marker (``*``, not JSON) cannot collide with a
value. ASCII-only JSON: any character, even a lone surrogate from a hand-made event, can
be stored by every backend. Strings are cut to ``prompts.MAX_VALUE_CHARS`` first.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache

from promptlab.prompts.analytics import cut

_MAX_NUMBER_CHARS = 64


@lru_cache(maxsize=8192, typed=True)
def value_text(value: object) -> str | None:
    """A recorded value as stored; None: not a value analytics keep."""
    if isinstance(value, str):
        return json.dumps(cut(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        text = json.dumps(value)
        return text if len(text) <= _MAX_NUMBER_CHARS else None
    return None


def parse_value(text: str) -> str | bool | int | float:
    """The value a stored text stands for (the inverse of :func:`value_text`)."""
    try:
        parsed = json.loads(text)
    except ValueError:
        return text
    return parsed if isinstance(parsed, str | bool | int | float) else text
