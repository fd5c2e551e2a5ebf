"""The connection guard: what aiohttp answers before our middleware sees a request.

Two gaps at aiohttp's protocol level, closed by subclassing its ``RequestHandler`` (the
per-connection protocol) rather than parsing HTTP ourselves:

* **Errors the parser raises** (200 headers, a 100 KB header, a malformed request line,
  a broken chunked or gzip body read before a handler runs) are answered by aiohttp with
  a ``text/plain`` page that may quote the offending line. :meth:`GuardedRequestHandler.
  handle_error` answers OpenAI-shaped JSON instead, with a fixed message (a header line
  is never echoed: it may be an ``Authorization`` header), 431 for header limits.
* **Slowloris**: aiohttp has no header-read timeout (its keep-alive timeout only covers
  idle connections between requests, and is reset by every byte). The guard starts a
  timer when the first byte of a request head arrives (at connection start for the
  first request, at the first byte after a response for the next ones) and stops it
  once the blank line that ends the head has arrived. A head that takes longer than
  ``server.header_timeout_s`` gets a 408 and the connection is closed. An idle
  keep-alive connection is left to aiohttp's keep-alive timeout.

:class:`GuardedAppRunner` is ``web.AppRunner`` whose server builds these handlers; it
overrides ``_make_server``, the runner's documented extension point (``ServerRunner``
and ``AppRunner`` each implement it).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

HEAD_END = b"\r\n\r\n"

_TIMEOUT_BODY = json.dumps({
    "error": {
        "message": "the request headers did not arrive in time (server.header_timeout_s)",
        "type": "invalid_request_error",
        "code": "header_timeout",
        "param": None,
    }
}).encode()  # fmt: skip
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
    b"Connection: close\r\nContent-Length: " + str(len(_TIMEOUT_BODY)).encode() + b"\r\n\r\n"
) + _TIMEOUT_BODY


def _error_json(status: int, message: str, code: str) -> web.Response:
    error_type = "server_error" if status >= 500 else "invalid_request_error"
    body = {"error": {"message": message, "type": error_type, "code": code, "param": None}}
    response = web.Response(
        status=status, body=json.dumps(body).encode(), content_type="application/json"
    )
    response.force_close()
    return response


class GuardedRequestHandler(RequestHandler):
    """aiohttp's connection protocol with a header-read deadline and JSON errors."""

    def __init__(self, *args: Any, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self._head_timer: asyncio.TimerHandle | None = None
        self._in_head = True
        """True from the first byte of a request head until its blank line."""
        self._tail = b""
        self._guard_transport: asyncio.Transport | None = None
        self.request_done = False
        """Set by :func:`mark_request_done` once a handler has answered."""

    # ------------------------------------------------------------------ slowloris

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._guard_transport = transport  # type: ignore[assignment]
        self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        self._guard_transport = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._in_head and self._head_timer is None and self.request_done:
            # First byte of the next request on a kept-alive connection.
            self._in_head, self._tail, self.request_done = True, b"", False
            self._arm()
        if self._in_head:
            window = self._tail + data
            if HEAD_END in window:
                self._in_head = False
                self._disarm()
            else:
                self._tail = window[-3:]
        super().data_received(data)

    def _arm(self) -> None:
        if self.header_timeout > 0 and self._head_timer is None:
            self._head_timer = asyncio.get_running_loop().call_later(
                self.header_timeout, self._head_timed_out
            )

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        transport = self._guard_transport
        if transport is None or transport.is_closing():
            return
        transport.write(_TIMEOUT_RESPONSE)
        self.force_close()
        transport.close()

    # ------------------------------------------------------------------ errors

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            # Part of a response went out already: only aiohttp can end it (it raises).
            return super().handle_error(request, status, exc, message)
        if isinstance(exc, LineTooLong) or "too many headers" in str(message).lower():
            self.logger.info("refused a request: %s", type(exc).__name__ if exc else status)
            return _error_json(
                431,
                f"the request headers are too large or too many (at most {self.max_headers}"
                f" headers of at most {self.max_field_size} bytes each)",
                "headers_too_large",
            )
        if status < 500:
            self.logger.info("refused a malformed request: %s", type(exc).__name__)
            return _error_json(status, "the request is not valid HTTP/1.1", "invalid_http")
        if status == 504:
            return _error_json(504, "the request timed out in the sidecar", "timeout")
        self.log_exception("error handling a request", exc_info=exc)
        return _error_json(500, "internal error in the promptlab sidecar", "internal_error")


def mark_request_done(request: web.Request) -> None:
    """Tell the connection guard that the next bytes on this connection start a new head."""
    protocol = request.protocol
    if isinstance(protocol, GuardedRequestHandler):
        protocol.request_done = True


class GuardedServer(web.Server):
    """``web.Server`` whose connections are :class:`GuardedRequestHandler`."""

    def __init__(self, *args: Any, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self.handler_kwargs = kwargs

    def __call__(self) -> RequestHandler:
        kwargs = {
            k: v
            for k, v in self.handler_kwargs.items()
            if k not in ("request_factory", "handler_cancellation", "loop")
        }
        return GuardedRequestHandler(
            self, loop=asyncio.get_running_loop(), header_timeout=self.header_timeout, **kwargs
        )


class GuardedAppRunner(web.AppRunner):
    """``web.AppRunner`` serving through :class:`GuardedServer`."""

    def __init__(self, app: web.Application, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.header_timeout = header_timeout
        self.server_kwargs = {
            k: v for k, v in kwargs.items() if k not in ("handle_signals", "shutdown_timeout")
        }

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        return GuardedServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            header_timeout=self.header_timeout,
            **self.server_kwargs,
        )
