"""Logging of the ``promptlab`` process: levels by ``-v``, text or JSON lines.

- no ``-v``: warnings and errors only;
- ``-v``: our INFO lines, including the sidecar's access log (``promptlab.access``);
- ``-vv``: our DEBUG lines. Third-party loggers (asyncio, aiohttp's own, nats,
  litellm, httpx, urllib3, opentelemetry...) stay at WARNING whatever the verbosity:
  their debug output is noise to an operator and can carry request details.

``--log-format json`` writes one JSON object per line (``ts``, ``level``, ``logger``,
``message`` and the record's structured extras such as the access log's fields).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["text", "json"]

OUR_LOGGERS = ("promptlab",)
"""Our loggers (every module logs under ``promptlab.``); everything else is third party."""

ACCESS_LOGGER = "promptlab.access"

# Attributes every LogRecord has; anything else was passed as ``extra=`` and is a field.
_STANDARD = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record; ``extra=`` fields become keys."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str, ensure_ascii=False)


def level_for(verbosity: int) -> int:
    """WARNING, INFO (``-v``) or DEBUG (``-vv``)."""
    return logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG


def configure_logging(verbosity: int = 0, fmt: LogFormat = "text") -> None:
    """Set up the root handler on stderr; our packages at the chosen level."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    # Third-party loggers inherit WARNING from the root; ours get the chosen level.
    root.setLevel(logging.WARNING)
    level = level_for(verbosity)
    for name in OUR_LOGGERS:
        logging.getLogger(name).setLevel(level)
