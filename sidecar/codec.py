"""JSON on the hot path: orjson when it can, the standard library when it cannot.

orjson parses and encodes several times faster than :mod:`json`. It is stricter in a
few corners (``NaN``, integers beyond 64 bits, non-string keys); there the standard
library takes over, so what is accepted and what error messages say do not change.
"""

from __future__ import annotations

import json
from typing import Any

from sidecar.inputs import check_decoded

orjson: Any
try:
    import orjson
except (
    ImportError
):  # pragma: no cover - orjson is a dependency; this keeps a broken install working
    orjson = None


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


def dumps(obj: Any) -> bytes:
    """Compact JSON as bytes."""
    if orjson is not None:
        try:
            return orjson.dumps(obj)
        except TypeError:
            pass
    return json.dumps(obj, separators=(",", ":")).encode()
