"""JSON on the hot path: the providers package's codec, plus the sidecar's input checks.

Parsing is orjson when it can; where orjson refuses (``NaN``, integers beyond 64 bits,
lone surrogates) the standard library decides, and then what it accepted is checked
(:func:`sidecar.inputs.check_decoded`): nothing downstream can carry such values.
"""

from __future__ import annotations

import json
from typing import Any

from providers.codec import dumps, orjson
from sidecar.inputs import check_decoded

__all__ = ["dumps", "loads"]


def loads(raw: bytes | str) -> Any:
    """Parse JSON (``ValueError`` when it is not, or when it holds a lone surrogate or an
    integer beyond 64 bits, which orjson refuses and nothing downstream can carry)."""
    if orjson is not None:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # let the standard library decide, and word the error
    value = json.loads(raw)
    check_decoded(value)
    return value
