"""The access log (``promptlab -v serve``): one line per request, no bodies, no keys.

Fields: method, path (without the query string, which could carry a token), status,
latency, and for chat completions the prompt, variant and execution id. They are
passed to the log record as ``extra`` fields too, so ``--log-format json`` emits them
as keys. Headers and bodies are never read here: a provider or client key cannot
reach the log.
"""

from __future__ import annotations

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from promptlab.sidecar.proxy import PROMPT_ID_KEY
from promptlab.sidecar.recording import EXECUTION_HEADER, VARIANT_HEADER


class AccessLogger(AbstractAccessLogger):
    """aiohttp's ``access_log_class`` for the sidecar."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        latency_ms = time * 1000.0
        prompt = request.get(PROMPT_ID_KEY) or ""
        variant = response.headers.get(VARIANT_HEADER, "")
        execution_id = response.headers.get(EXECUTION_HEADER, "")
        fields = {
            "method": request.method,
            "path": request.path,
            "status": response.status,
            "latency_ms": round(latency_ms, 3),
            "prompt": prompt,
            "variant": variant,
            "execution_id": execution_id,
        }
        self.logger.info(
            "%s %s %d %.1fms prompt=%s variant=%s execution=%s",
            request.method,
            request.path,
            response.status,
            latency_ms,
            prompt or "-",
            variant or "-",
            execution_id or "-",
            extra=fields,
        )
