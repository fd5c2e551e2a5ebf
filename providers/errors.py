"""One exception tree for every way a model call can fail.

Each error carries ``kind`` (the short machine name recorded as ``error_kind``), ``status``
(the HTTP status a proxy should answer with), whether a retry of the same call is safe
(``retryable``: nothing reached the upstream, or it asked for a retry) and whether another
model may take over (``fallback_ok``: 5xx, timeouts, connection failures; never a 4xx).
Messages are redacted before they are built: no provider key is ever in one.
"""

from __future__ import annotations

from collections.abc import Sequence

Attempt = tuple[str, str | None]
"""One model tried: ``(provider/model, error kind or None when it answered)``."""


class ProviderError(Exception):
    """Root of every failure of a model call."""

    kind: str = "provider_error"
    status: int = 502
    retryable: bool = False
    fallback_ok: bool = False

    def __init__(
        self,
        message: str,
        *,
        kind: str | None = None,
        status: int | None = None,
        upstream_status: int | None = None,
        retry_after_s: float | None = None,
        upstream_code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if kind is not None:
            self.kind = kind
        if status is not None:
            self.status = status
        self.upstream_status = upstream_status
        """The upstream's own HTTP status, when it answered."""
        self.retry_after_s = retry_after_s
        """The upstream's Retry-After, in seconds, when it sent one."""
        self.upstream_code = upstream_code
        """The upstream's own error code (OpenAI's ``error.code``: ``model_not_found``...)."""
        self.model: str | None = None
        """The model (``provider/model``) whose call failed."""
        self.attempts: list[Attempt] = []
        """Every model tried, in order, with its error kind (the last is this error's)."""

    def with_attempts(self, attempts: Sequence[Attempt]) -> ProviderError:
        self.attempts = list(attempts)
        return self


class ProviderNotConfigured(ProviderError):
    """The model names no configured provider (a caller's mistake: 400)."""

    kind = "not_configured"
    status = 400


class RouteNotAllowed(ProviderError):
    """The provider may not call this model: a ``litellm`` provider without ``api_base``
    is limited to its ``allowed_models`` (a caller's or a variant's mistake: 400)."""

    kind = "route_not_allowed"
    status = 400


class Misconfigured(ProviderError):
    """The provider's settings cannot work (no ``api_base``, bad URL, unreadable CA file)."""

    kind = "misconfigured"
    status = 500


class UpstreamRejected(ProviderError):
    """The upstream refused the request as the client's mistake (400, 404, 409, 413, 422):
    its status is kept so an SDK behaves as it would with the provider."""

    kind = "bad_request"
    status = 400


class AuthFailed(ProviderError):
    """The upstream rejected the provider key (401/403). Not retried; the client gets 502
    (it can do nothing about our key)."""

    kind = "auth"


class RateLimited(ProviderError):
    """429 from the upstream after the retries that fit in the deadline."""

    kind = "rate_limited"
    status = 429
    retryable = True


class UpstreamFailed(ProviderError):
    """5xx from the upstream."""

    kind = "upstream_5xx"
    retryable = True
    fallback_ok = True


class ConnectFailed(ProviderError):
    """No connection could be opened: nothing reached the upstream, so a retry is safe."""

    kind = "connect"
    retryable = True
    fallback_ok = True


class TLSFailed(ProviderError):
    """The TLS handshake or the certificate check failed. Not retried (it would fail the
    same way), but another provider may take over."""

    kind = "tls"
    fallback_ok = True


class ProviderTimeout(ProviderError):
    """No answer within the deadline (``timeout``) or no first token in time
    (``first_token_timeout``). Not retried: the upstream may be working on it."""

    kind = "timeout"
    status = 504
    fallback_ok = True


class ConnectionLost(ProviderError):
    """The connection broke after the request was sent (or mid-stream). Not retried: the
    upstream may have received it (no POST re-send)."""

    kind = "connection_lost"
    fallback_ok = True


class BadResponse(ProviderError):
    """The upstream's answer cannot be read: not JSON, malformed gzip, broken framing."""

    kind = "bad_response"


class ResponseTooLarge(ProviderError):
    """The response body is over ``max_response_bytes`` (after decompression)."""

    kind = "too_large"
