"""OpenAI-shaped errors and secret redaction: everything the sidecar says when it fails.

Every failure leaves the sidecar as ``{"error": {"message", "type", "code", "param"}}``
with the right status, never a traceback, and every message goes through a
:class:`Redactor` first so a provider key can never reach a client, an event or a log.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from aiohttp import web


class SidecarError(Exception):
    """A failure the client should see, with its HTTP status and OpenAI error fields."""

    status: int = 500
    type: str = "server_error"
    headers: dict[str, str] | None = None
    """Extra response headers (the execution id of a failed call)."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        status: int | None = None,
        type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type

    def body(self) -> dict[str, object]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "code": self.code,
                "param": self.param,
            }
        }


class BadRequest(SidecarError):
    """400: the request cannot be understood (JSON, unknown prompt, variables)."""

    status = 400
    type = "invalid_request_error"


class Unauthorized(SidecarError):
    status = 401
    type = "authentication_error"


class Forbidden(SidecarError):
    status = 403
    type = "permission_error"


class NotFound(SidecarError):
    status = 404
    type = "invalid_request_error"


class Conflict(SidecarError):
    status = 409
    type = "invalid_request_error"


class TooLarge(SidecarError):
    status = 413
    type = "invalid_request_error"


class UpstreamError(SidecarError):
    """The model provider failed; 502 unless the provider's status says better."""

    status = 502
    type = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        kind: str = "upstream_error",
        upstream_status: int | None = None,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code or kind)
        self.kind = kind
        """Short machine name recorded as ``error_kind`` in ExecutionCompleted."""
        self.upstream_status = upstream_status


class UpstreamTimeout(UpstreamError):
    """504: the provider did not answer within the connect, first-token or total timeout."""

    status = 504
    type = "timeout_error"


def error_response(
    error: SidecarError, redactor: Redactor | None = None, headers: dict[str, str] | None = None
) -> web.Response:
    """The JSON response for ``error``, with its message redacted."""
    body = error.body()
    if redactor is not None:
        body["error"]["message"] = redactor.redact(error.message)  # type: ignore[index]
    return web.Response(
        status=error.status,
        body=json.dumps(body).encode(),
        content_type="application/json",
        headers=headers,
    )


# Shapes of credentials that must never be echoed even when we do not know the value:
# bearer tokens and the common provider key prefixes.
_KEY_PATTERN = re.compile(
    r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}|\b(sk|pk|rk|gsk|xai|key)-[A-Za-z0-9_-]{8,}"
)


class Redactor:
    """Replaces known secrets (provider keys read from the environment) and key-shaped
    strings with ``***``. One per app; the upstream registry feeds it the keys it reads."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        # Very short values would redact ordinary words; real keys are long.
        if secret and len(secret) >= 6 and secret not in self._secrets:
            self._secrets.append(secret)
            self._secrets.sort(key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return _KEY_PATTERN.sub(lambda m: (m.group(1) or "") + "***", text)
