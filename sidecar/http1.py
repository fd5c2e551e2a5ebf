"""A small keep-alive HTTP/1.1 client for the hot path: POST to an OpenAI-compatible API.

Why not aiohttp's ``ClientSession``: it is general (cookies, redirects, proxies,
tracing, multipart, auto headers) and costs about 100 us of CPU per call; this
client does one thing (a POST with a bytes body, answered with a ``Content-Length``,
chunked or read-until-close body) on a raw :class:`asyncio.Protocol`, for about a
quarter of that.

* :class:`Pool` keeps idle keep-alive connections per ``(scheme, host, port)``,
  most recently used first, and at most ``limit`` connections per origin (callers wait
  for a free one beyond). A connection idle longer than ``keepalive_s``, or one the
  server closed, is never reused.
* :meth:`Pool.request` sends the request and returns a :class:`Response` once its
  status line and headers are in; :meth:`Response.read` returns the whole body and
  :meth:`Response.iter_chunks` yields it as it arrives (SSE streaming). A response read
  to its end gives its connection back to the pool; :meth:`Response.close` drops it
  (which is how an upstream call is cancelled).
* Timeouts: ``connect_timeout`` opens a connection (TCP and TLS); ``read_timeout``
  bounds every wait on the socket (headers, each chunk); ``deadline`` (a loop time)
  bounds everything. Expiry raises :class:`ConnectTimeout` or :class:`ReadTimeout`,
  both :class:`TimeoutError`.
* A request sent on a reused connection that the server closes before answering a
  single byte (its keep-alive timer fired as we sent) is sent again once on a new
  connection, as urllib3 and httpcore do; any other failure raises.
* ``gzip`` and ``deflate`` bodies are decoded (we never ask for them, but a server may
  compress anyway).
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections import deque
from collections.abc import AsyncIterator, Mapping
from urllib.parse import urlsplit

__all__ = [
    "ConnectError",
    "ConnectTimeout",
    "ConnectionLost",
    "HTTPClientError",
    "Origin",
    "Pool",
    "ProtocolError",
    "ReadTimeout",
    "Response",
]

MAX_HEAD_BYTES = 64 * 1024
"""Longest status line + headers accepted from a server."""


class HTTPClientError(Exception):
    """Base of this client's errors."""


class ConnectError(HTTPClientError):
    """No connection could be opened: nothing was sent, so a retry is safe."""

    def __init__(self, message: str, os_error: OSError | None = None) -> None:
        super().__init__(message)
        self.os_error = os_error


class ConnectionLost(HTTPClientError):
    """The connection failed or closed before the response was complete."""


class ProtocolError(HTTPClientError):
    """The server sent something that is not HTTP/1.x."""


class ConnectTimeout(HTTPClientError, TimeoutError):
    """Opening the connection took longer than ``connect_timeout``."""


class ReadTimeout(HTTPClientError, TimeoutError):
    """The server sent nothing for ``read_timeout`` seconds, or the deadline passed."""


class Origin:
    """Where requests go: ``http(s)://host:port`` and the request-target of one URL."""

    __slots__ = ("host", "key", "path", "port", "scheme")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.key = (self.scheme, self.host, self.port)

    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def request_head(origin: Origin, headers: Mapping[str, str]) -> bytes:
    """The request line and headers of a POST to ``origin``, up to ``Content-Length: ``
    (the caller appends the length, a blank line and the body)."""
    lines = [f"POST {origin.path} HTTP/1.1", f"Host: {origin.host_header()}"]
    for name, value in headers.items():
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
            raise ValueError(f"header {name!r} holds a line break")
        if name.lower() not in ("host", "content-length", "transfer-encoding", "connection"):
            lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\nContent-Length: ").encode("latin-1")


# ---------------------------------------------------------------------- response

_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILERS, _UNTIL_EOF, _DONE = range(8)


class Response:
    """One response; filled by its connection as bytes arrive."""

    __slots__ = (
        "_body", "_conn", "_decoder", "_error", "_released", "_waiter",
        "complete", "headers", "keep_alive", "reason", "status", "version",
    )  # fmt: skip

    def __init__(self, conn: _Connection) -> None:
        self._conn: _Connection | None = conn
        self.status = 0
        self.reason = ""
        self.version = ""
        self.headers: dict[str, str] = {}
        """Header names in lower case (a repeated header keeps its last value)."""
        self.keep_alive = True
        self.complete = False
        """True once the whole body is in."""
        self._body: list[bytes] = []
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._decoder: zlib._Decompress | None = None
        self._released = False

    # ------------------------------------------------------------------ reading

    async def read(self) -> bytes:
        """The whole body (decoded); gives the connection back to the pool."""
        while not self.complete:
            await self._wait()
        body = self._take()
        self.release()
        return body

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives (decoded). Stopping early does not release the
        connection: call :meth:`close` (or :meth:`release`, which closes an unfinished one)."""
        while True:
            if self._body:
                chunk = self._take()
                if chunk:
                    yield chunk
                continue
            if self.complete:
                tail = self._flush_decoder()
                if tail:
                    yield tail
                self.release()
                return
            await self._wait()

    def release(self) -> None:
        """Give the connection back when the body was read to its end; close it otherwise."""
        if self._released:
            return
        self._released = True
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.finish(self.complete and self.keep_alive)

    def close(self) -> None:
        """Drop the connection (the server sees the call cancelled)."""
        self.keep_alive = False
        self.release()

    # ------------------------------------------------------------------ internals

    def _take(self) -> bytes:
        raw = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self._body.clear()
        if self._decoder is not None:
            raw = self._decoder.decompress(raw)
            if self.complete and not self._body:
                raw += self._flush_decoder()
        return raw

    def _flush_decoder(self) -> bytes:
        decoder, self._decoder = self._decoder, None
        return decoder.flush() if decoder is not None else b""

    async def _wait(self) -> None:
        if self._error is None:
            conn = self._conn
            if conn is None:
                raise ConnectionLost("the response was closed before its end")
            await conn.wait(self)
            if self._error is None:
                return
        self.close()
        raise self._error


# ---------------------------------------------------------------------- connection


class _Connection(asyncio.Protocol):
    """One socket and its HTTP/1.1 response parser (one request at a time)."""

    def __init__(self, pool: _OriginPool) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        self.response: Response | None = None
        self.received = 0
        """Bytes of the current response received so far."""
        self._buf = b""
        self._state = _DONE
        self._remaining = 0
        self._read_timeout = 60.0
        self._deadline = float("inf")

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        response = self.response
        if response is None:
            # Bytes nobody asked for: the connection is out of step, drop it.
            self._abort(ProtocolError("the server sent data without a request"))
            return
        self.received += len(data)
        try:
            self._feed(response, self._buf + data if self._buf else data)
        except ProtocolError as exc:
            self._abort(exc)

    def eof_received(self) -> bool | None:
        response = self.response
        if response is not None and self._state == _UNTIL_EOF:
            response.complete = True
            response.keep_alive = False
            self._state = _DONE
            self._wake(response)
        self._lost(None)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost(exc)

    # ------------------------------------------------------------------ requests

    def send(self, response: Response, data: bytes, read_timeout: float, deadline: float) -> None:
        assert self.transport is not None
        self.response = response
        self.received = 0
        self._buf = b""
        self._state = _HEAD
        self._read_timeout = read_timeout
        self._deadline = deadline
        self.transport.write(data)

    async def wait(self, response: Response) -> None:
        """Wait for more of ``response`` (headers, body bytes, its end or an error)."""
        waiter = response._waiter = self.loop.create_future()
        now = self.loop.time()
        delay = min(self._read_timeout, self._deadline - now)
        timer = self.loop.call_later(
            max(0.0, delay), self._timed_out, waiter, self._deadline <= now + delay
        )
        try:
            await waiter
        except BaseException:
            # A timeout, a broken connection, or the caller gave up (client went away):
            # the rest of the answer will never be read.
            response.close()
            raise
        finally:
            timer.cancel()
            response._waiter = None

    def finish(self, reusable: bool) -> None:
        """The response is done with: back to the pool, or closed."""
        self.response = None
        if reusable and not self.closed and not self._buf and self._state == _DONE:
            self.pool.put(self)
        else:
            self.close()
            self.pool.dropped(self)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    # ------------------------------------------------------------------ internals

    def _timed_out(self, waiter: asyncio.Future[None], deadline: bool) -> None:
        if not waiter.done():
            what = (
                "the call's deadline passed" if deadline else f"no data for {self._read_timeout:g}s"
            )
            waiter.set_exception(ReadTimeout(f"read timed out: {what}"))

    def _wake(self, response: Response) -> None:
        waiter = response._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _abort(self, exc: BaseException) -> None:
        response = self.response
        self._buf = b""
        if response is None:
            if not self.closed:
                self.close()
                self.pool.dropped(self)
            return
        if not response.complete:
            response._error = exc
            self._wake(response)
        response.keep_alive = False
        self.close()  # the reader's release() gives the slot back

    def _lost(self, exc: Exception | None) -> None:
        was_closed, self.closed = self.closed, True
        response = self.response
        if response is not None and not response.complete and response._error is None:
            reason = f": {exc}" if exc else ""
            response._error = ConnectionLost(
                f"the server closed the connection before the response was complete{reason}"
            )
            response.keep_alive = False
            self._wake(response)
        if response is None and not was_closed:
            self.pool.dropped(self)

    def _feed(self, response: Response, buf: bytes) -> None:
        """Parse what arrived; wake the reader when there is something for it."""
        state = self._state
        if state == _HEAD:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD_BYTES:
                    raise ProtocolError("response headers too long")
                self._buf = buf
                return
            state = self._parse_head(response, buf[:end])
            buf = buf[end + 4 :]
            if state == _HEAD:  # an interim 1xx response: the real one follows
                self._state = _HEAD
                self._buf = b""
                if buf:
                    self._feed(response, buf)
                return
            self._wake(response)
        if state == _LENGTH:
            n = len(buf)
            if n >= self._remaining:
                if n > self._remaining:
                    raise ProtocolError("the server sent more than Content-Length")
                if buf:
                    response._body.append(buf)
                state = _DONE
                response.complete = True
            else:
                response._body.append(buf)
                self._remaining -= n
            buf = b""
        elif state == _UNTIL_EOF:
            if buf:
                response._body.append(buf)
            buf = b""
        elif state != _DONE:
            state, buf = self._feed_chunked(response, state, buf)
        elif buf:
            raise ProtocolError("the server sent more than one response")
        self._state = state
        self._buf = buf
        if response._body or response.complete:
            self._wake(response)

    def _feed_chunked(self, response: Response, state: int, buf: bytes) -> tuple[int, bytes]:
        pos = 0
        while True:
            if state == _CHUNK_SIZE:
                nl = buf.find(b"\r\n", pos)
                if nl < 0:
                    if len(buf) - pos > 1024:
                        raise ProtocolError("chunk size line too long")
                    break
                try:
                    size = int(buf[pos:nl].split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise ProtocolError("bad chunk size") from None
                pos = nl + 2
                if size == 0:
                    state = _TRAILERS
                else:
                    self._remaining = size
                    state = _CHUNK_DATA
            elif state == _CHUNK_DATA:
                take = min(self._remaining, len(buf) - pos)
                if take <= 0:
                    break
                response._body.append(buf[pos : pos + take])
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    state = _CHUNK_END
            elif state == _CHUNK_END:
                if len(buf) - pos < 2:
                    break
                if buf[pos : pos + 2] != b"\r\n":
                    raise ProtocolError("a chunk does not end with CRLF")
                pos += 2
                state = _CHUNK_SIZE
            elif state == _TRAILERS:
                nl = buf.find(b"\r\n", pos)
                if nl < 0:
                    if len(buf) - pos > MAX_HEAD_BYTES:
                        raise ProtocolError("trailers too long")
                    break
                line_empty = nl == pos
                pos = nl + 2
                if line_empty:
                    response.complete = True
                    state = _DONE
                    if pos < len(buf):
                        raise ProtocolError("the server sent more than one response")
                    break
            else:
                break
        return state, buf[pos:] if pos < len(buf) else b""

    def _parse_head(self, response: Response, head: bytes) -> int:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"not an HTTP/1.x status line: {lines[0][:100]!r}")
        status = int(parts[1])
        if 100 <= status < 200:
            return _HEAD
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise ProtocolError("a header line without ':'")
            headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
        response.status = status
        response.version = parts[0].decode("latin-1")
        response.reason = parts[2].decode("latin-1", "replace") if len(parts) > 2 else ""
        response.headers = headers
        connection = headers.get("connection", "").lower()
        response.keep_alive = "close" not in connection and (
            response.version != "HTTP/1.0" or "keep-alive" in connection
        )
        encoding = headers.get("content-encoding", "").lower()
        if encoding in ("gzip", "x-gzip"):
            response._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            response._decoder = zlib.decompressobj()  # zlib-wrapped, as RFC 9110 says
        if status in (204, 304):
            response.complete = True
            return _DONE
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return _CHUNK_SIZE
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                raise ProtocolError(f"bad Content-Length {length[:20]!r}")
            self._remaining = int(length)
            if self._remaining == 0:
                response.complete = True
                return _DONE
            return _LENGTH
        response.keep_alive = False
        return _UNTIL_EOF


# ---------------------------------------------------------------------- pool


class _OriginPool:
    """The connections to one origin."""

    def __init__(
        self,
        origin: Origin,
        loop: asyncio.AbstractEventLoop,
        limit: int,
        keepalive_s: float,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        self.origin = origin
        self.loop = loop
        self.limit = limit
        self.keepalive_s = keepalive_s
        self.ssl_context = ssl_context
        self.idle: list[_Connection] = []
        self.closed = False
        self.size = 0
        """Open connections, idle or busy (or being opened)."""
        self.waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self, connect_timeout: float) -> _Connection:
        now = self.loop.time()
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed and now - conn.idle_since < self.keepalive_s:
                conn.reused = True
                return conn
            conn.close()
            self.size -= 1
        while self.size >= self.limit:
            waiter = self.loop.create_future()
            self.waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter in self.waiters:
                    self.waiters.remove(waiter)
                elif waiter.done() and not waiter.cancelled():
                    self._notify()  # we were woken but leave: wake the next one instead
                raise
            if self.idle:
                return await self.acquire(connect_timeout)
        self.size += 1
        try:
            return await self._open(connect_timeout)
        except BaseException:
            self.size -= 1
            self._notify()
            raise

    async def _open(self, connect_timeout: float) -> _Connection:
        origin = self.origin
        try:
            async with asyncio.timeout(connect_timeout):
                _, conn = await self.loop.create_connection(
                    lambda: _Connection(self),
                    origin.host,
                    origin.port,
                    ssl=self.ssl_context,
                    server_hostname=origin.host if self.ssl_context else None,
                )
        except TimeoutError:
            raise ConnectTimeout(
                f"connecting to {origin.host}:{origin.port} took more than {connect_timeout:g}s"
            ) from None
        except OSError as exc:
            raise ConnectError(
                f"cannot connect to {origin.host}:{origin.port}: {exc.strerror or exc}", exc
            ) from exc
        return conn

    def put(self, conn: _Connection) -> None:
        if self.closed:  # a call that finished after Pool.close()
            conn.close()
            self.dropped(conn)
            return
        conn.idle_since = self.loop.time()
        self.idle.append(conn)
        self._notify()

    def dropped(self, conn: _Connection) -> None:
        if conn in self.idle:
            self.idle.remove(conn)
        self.size -= 1
        self._notify()

    def _notify(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close(self) -> None:
        self.closed = True
        for conn in self.idle:
            conn.close()
        self.idle.clear()


class Pool:
    """Keep-alive connections per origin, shared by every call of one app."""

    def __init__(
        self,
        *,
        limit: int = 512,
        keepalive_s: float = 15.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.limit = limit
        self.keepalive_s = keepalive_s
        self._ssl_context = ssl_context
        self._pools: dict[tuple[str, str, int], _OriginPool] = {}
        self._closed = False

    def _pool(self, origin: Origin) -> _OriginPool:
        pool = self._pools.get(origin.key)
        if pool is None:
            if self._closed:
                raise RuntimeError("the pool is closed")
            ctx = None
            if origin.scheme == "https":
                if self._ssl_context is None:
                    self._ssl_context = ssl.create_default_context()
                ctx = self._ssl_context
            pool = self._pools[origin.key] = _OriginPool(
                origin, asyncio.get_running_loop(), self.limit, self.keepalive_s, ctx
            )
        return pool

    async def request(
        self,
        origin: Origin,
        head: bytes,
        body: bytes,
        *,
        connect_timeout: float,
        read_timeout: float,
        deadline: float,
    ) -> Response:
        """POST ``body``; returns once the status line and headers are in.

        ``head`` comes from :func:`request_head` for this origin. The caller reads the
        body (or closes the response).
        """
        pool = self._pool(origin)
        data = b"".join((head, str(len(body)).encode(), b"\r\n\r\n", body))
        loop = pool.loop
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ReadTimeout("read timed out: the call's deadline passed")
            conn = await pool.acquire(min(connect_timeout, remaining))
            response = Response(conn)
            conn.send(response, data, read_timeout, deadline)
            try:
                while not response.status:
                    await response._wait()
            except ConnectionLost:
                response.close()
                if conn.reused and conn.received == 0:
                    continue  # a stale keep-alive connection: nothing was answered, send again
                raise
            except BaseException:
                response.close()
                raise
            return response

    async def close(self) -> None:
        self._closed = True
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
