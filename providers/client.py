"""The OpenAI-compatible client: aiohttp, one session per provider, retries that are safe.

Sessions: each HTTP provider gets its own :class:`aiohttp.ClientSession` (created by
:meth:`HttpClient.start`, closed by :meth:`HttpClient.close`; the sidecar does both in
its ``cleanup_ctx``), so ``max_connections``, the TLS settings (``ca_bundle``,
``verify``) and the keep-alive pool are per provider: one slow provider cannot take the
connections of another. ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` (and ``~/.netrc``
proxy credentials) are honoured, as aiohttp's ``trust_env`` does, but read once per
provider when the sessions start: looking them up on every request (what ``trust_env``
does) cost about a millisecond per call on the bench box.

Deadline: every attempt runs under ``ClientTimeout(total=<what is left of the call's
deadline>)``, which covers the wait for a pool slot, connecting, sending and reading;
``sock_connect`` is the provider's ``connect_timeout_s`` and ``sock_read`` its
``first_token_timeout_s`` (the longest silence on the socket).

Retries, with full-jitter exponential backoff (:func:`providers.backoff.backoff_delay`),
only when the request cannot have been processed: a refused connection, a 429 or a 5xx
answer. ``Retry-After`` (seconds or an HTTP date) is honoured; when it would overrun the
deadline the call fails at once. A
request is never sent again once it may have reached the upstream (the connection broke
after sending, a read timed out): aiohttp itself only re-sends idempotent methods, and we
do not retry those failures. TLS failures are not retried either.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import ssl
import time
from collections.abc import Mapping

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from promptlab.providers import codec
from promptlab.providers.backoff import backoff_delay
from promptlab.providers.body import ACCEPT_ENCODING, read_body
from promptlab.providers.errors import (
    AuthFailed,
    BadResponse,
    ConnectFailed,
    ConnectionLost,
    Misconfigured,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    TLSFailed,
    UpstreamFailed,
    UpstreamRejected,
)
from promptlab.providers.redact import Redactor
from promptlab.providers.settings import ProviderSettings

ERROR_BODY_LIMIT = 64 * 1024
"""How much of an error answer we read (for its message)."""


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or HTTP-date); None when absent or bad."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        return max(0.0, when.timestamp() - time.time())
    return seconds if seconds >= 0 and seconds == seconds else None


def upstream_message(raw: bytes, status: int) -> str:
    """The upstream's own error message (OpenAI shape or plain text), shortened."""
    try:
        data = codec.loads(raw)
    except ValueError:
        data = None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:500]
        if isinstance(err, str):
            return err[:500]
    text = raw.decode("utf-8", "replace").strip()
    return text[:500] or f"HTTP {status}"


CODE_CHARS = 64
"""Longest upstream error code kept: it is a machine name, not text."""


def upstream_code(raw: bytes) -> str | None:
    """The upstream's ``error.code`` (OpenAI shape), when it is a short string."""
    try:
        data = codec.loads(raw)
    except ValueError:
        return None
    err = data.get("error") if isinstance(data, dict) else None
    code = err.get("code") if isinstance(err, dict) else None
    return code if isinstance(code, str) and 0 < len(code) <= CODE_CHARS else None


def status_error(
    status: int, message: str, retry_after: float | None, code: str | None = None
) -> ProviderError:
    """Our error for an upstream's non-200 answer (``code``: the upstream's error code)."""
    error = _status_error(status, message, retry_after)
    error.upstream_code = code
    return error


def _status_error(status: int, message: str, retry_after: float | None) -> ProviderError:
    if status == 429:
        return RateLimited(message, upstream_status=status, retry_after_s=retry_after)
    if status in (401, 403):
        return AuthFailed(
            f"the upstream rejected the provider credentials: {message}", upstream_status=status
        )
    if 400 <= status < 500:
        return UpstreamRejected(message, status=status, upstream_status=status)
    if 500 <= status < 600:
        return UpstreamFailed(
            f"upstream error {status}: {message}", upstream_status=status, retry_after_s=retry_after
        )
    return UpstreamFailed(
        f"unexpected upstream status {status}", kind="bad_response", upstream_status=status
    )


def ssl_context(cfg: ProviderSettings) -> ssl.SSLContext | bool:
    """The TLS setting of a provider's connector."""
    if not cfg.verify:
        return False
    if cfg.ca_bundle:
        try:
            return ssl.create_default_context(cafile=cfg.ca_bundle)
        except (OSError, ssl.SSLError) as exc:
            raise Misconfigured(f"cannot read ca_bundle {cfg.ca_bundle!r}: {exc}") from None
    return True


def env_proxy(api_base: str | None) -> tuple[URL | None, aiohttp.BasicAuth | None]:
    """The proxy the environment names for ``api_base`` (``*_PROXY``, ``NO_PROXY``)."""
    if not api_base:
        return None, None
    try:
        url = URL(api_base)
        if not url.host:
            return None, None
        return get_env_proxy_for_url(url)
    except (LookupError, ValueError):
        return None, None


class HttpClient:
    """POSTs to OpenAI-compatible providers; one session per provider."""

    def __init__(
        self,
        providers: Mapping[str, ProviderSettings],
        keys: Mapping[str, str | None],
        redactor: Redactor,
    ) -> None:
        self._providers = {n: p for n, p in providers.items() if p.kind == "openai"}
        self._keys = keys
        self.redactor = redactor
        self._headers: dict[str, dict[str, str]] = {}
        for name, cfg in self._providers.items():
            headers = {
                **cfg.headers,
                "Content-Type": "application/json",
                "Accept-Encoding": ACCEPT_ENCODING,
            }
            key = keys.get(name)
            if key:
                headers["Authorization"] = f"Bearer {key}"
            self._headers[name] = headers
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._proxies: dict[str, tuple[URL | None, aiohttp.BasicAuth | None]] = {}
        self._urls: dict[str, URL] = {}
        self._rng = random.Random()

    async def start(self) -> None:
        """Open the sessions (inside the running loop)."""
        for name, cfg in self._providers.items():
            if name in self._sessions:
                continue
            connector = aiohttp.TCPConnector(
                limit=cfg.max_connections, limit_per_host=0, ssl=ssl_context(cfg)
            )
            self._proxies[name] = env_proxy(cfg.api_base)
            self._sessions[name] = aiohttp.ClientSession(
                connector=connector,
                trust_env=False,  # the proxy is resolved once, above
                auto_decompress=False,
                skip_auto_headers=("User-Agent",),
                headers=self._headers[name],
                # A proxy for many callers: a cookie one upstream answer sets must not
                # ride along on another caller's call (and the jar costs every call).
                cookie_jar=aiohttp.DummyCookieJar(),
            )

    async def close(self) -> None:
        sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            await session.close()

    def session(self, provider: str) -> aiohttp.ClientSession:
        session = self._sessions.get(provider)
        if session is None:
            raise RuntimeError("Providers.start() was not awaited")
        return session

    def _url(self, url: str) -> URL:
        """The parsed URL (parsed once: the hot path posts to the same few)."""
        parsed = self._urls.get(url)
        if parsed is None:
            try:
                parsed = URL(url)
            except (TypeError, ValueError):
                raise Misconfigured(f"bad upstream URL {url!r}") from None
            self._urls[url] = parsed
        return parsed

    async def post(
        self, provider: str, url: str, payload: bytes, deadline: float, what: str
    ) -> aiohttp.ClientResponse:
        """POST with safe retries; returns a 200 response (the caller reads and releases it).

        ``deadline`` is on the loop's clock.
        """
        cfg = self._providers[provider]
        session = self.session(provider)
        proxy, proxy_auth = self._proxies[provider]
        target = self._url(url)
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ProviderTimeout(f"{what} did not answer within the deadline")
            timeout = aiohttp.ClientTimeout(
                total=remaining,
                sock_connect=cfg.connect_timeout_s,
                sock_read=cfg.first_token_timeout_s,
            )
            try:
                resp = await session.post(
                    target,
                    data=payload,
                    timeout=timeout,
                    allow_redirects=False,
                    proxy=proxy,
                    proxy_auth=proxy_auth,
                )
            except ProviderError:
                raise
            except Exception as exc:
                error = self._send_error(exc, what, loop.time() >= deadline)
                if not error.retryable:
                    raise error from None
            else:
                if resp.status == 200:
                    return resp
                error = await self._answer_error(resp, what)
                if not error.retryable:
                    raise error
            if attempt >= cfg.max_retries:
                raise error
            delay = backoff_delay(
                attempt,
                first=cfg.retry_backoff_s,
                cap=cfg.retry_backoff_max_s,
                rng=self._rng,
                at_least=error.retry_after_s,
            )
            if loop.time() + delay >= deadline:
                raise error  # the wait it asks for overruns the deadline: fail now
            attempt += 1
            await asyncio.sleep(delay)

    async def _answer_error(self, resp: aiohttp.ClientResponse, what: str) -> ProviderError:
        try:
            raw = await read_body(resp, ERROR_BODY_LIMIT, what)
        except ProviderError:  # too large, malformed: the status says enough
            raw = b""
            resp.close()
        except BaseException:
            resp.close()
            raise
        else:
            resp.release()
        message = self.redactor.redact(upstream_message(raw, resp.status))
        return status_error(
            resp.status,
            message,
            retry_after_seconds(resp.headers.get("Retry-After")),
            upstream_code(raw),
        )

    def _send_error(self, exc: Exception, what: str, expired: bool) -> ProviderError:
        """Our error for a failure while connecting, sending or waiting for the headers."""
        name = exc.__class__.__name__
        if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
            text = self.redactor.redact(str(exc))[:300]
            return TLSFailed(f"{what}: TLS failed: {text}")
        if isinstance(exc, aiohttp.ClientConnectorError):
            why = exc.strerror or name
            return ConnectFailed(f"cannot connect to {what}: {why}")
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            if expired:
                return ProviderTimeout(f"{what} did not answer within the deadline")
            return ConnectFailed(f"connecting to {what} timed out", kind="connect_timeout")
        if isinstance(exc, aiohttp.SocketTimeoutError):
            return ProviderTimeout(f"{what} sent no response in time", kind="first_token_timeout")
        if isinstance(exc, TimeoutError):
            return ProviderTimeout(f"{what} did not answer within the deadline")
        if isinstance(exc, ssl.SSLError):
            return TLSFailed(f"{what}: TLS failed: {name}")
        if isinstance(exc, aiohttp.InvalidURL | ValueError):
            return Misconfigured(f"{what}: bad upstream URL")
        if isinstance(exc, aiohttp.ClientResponseError):
            return BadResponse(f"{what} sent a malformed response: {name}")
        # The connection broke after the request went out: it may have been processed.
        return ConnectionLost(f"{what}: connection lost: {name}")
