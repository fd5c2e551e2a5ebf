"""Log levels by -v and the JSON line format."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from promptlab.logs import OUR_LOGGERS, JsonFormatter, configure_logging


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    ours = {name: logging.getLogger(name).level for name in OUR_LOGGERS}
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    for name, value in ours.items():
        logging.getLogger(name).setLevel(value)


@pytest.mark.parametrize(
    ("verbosity", "ours", "theirs"),
    [
        (0, logging.WARNING, logging.WARNING),
        (1, logging.INFO, logging.WARNING),
        (2, logging.DEBUG, logging.WARNING),
    ],
)
def test_verbosity_raises_our_loggers_only(verbosity: int, ours: int, theirs: int) -> None:
    configure_logging(verbosity)
    for name in ("promptlab.sidecar.proxy", "promptlab.learner.service", "promptlab.access"):
        assert logging.getLogger(name).getEffectiveLevel() == ours, name
    for name in ("aiohttp.access", "asyncio", "nats.aio.client", "litellm", "urllib3"):
        assert logging.getLogger(name).getEffectiveLevel() == theirs, name


def test_json_lines_carry_the_extra_fields() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("promptlab.test-json")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("GET /healthz %d", 200, extra={"status": 200, "path": "/healthz"})
    finally:
        logger.removeHandler(handler)
    record = json.loads(stream.getvalue())
    assert record["message"] == "GET /healthz 200"
    assert record["level"] == "info" and record["logger"] == "promptlab.test-json"
    assert record["status"] == 200 and record["path"] == "/healthz"
    assert record["ts"].endswith("+00:00")
