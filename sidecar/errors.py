"""OpenAI-shaped errors and secret redaction: everything the sidecar says when it fails.

Every failure leaves the sidecar as ``{"error": {"message", "type", "code", "param"}}``
with the right status, never a traceback, and every message goes through a
:class:`Redactor` first so a provider key can never reach a client, an event or a log.
"""

from __future__ import annotations

import json

from aiohttp import web

from promptlab.providers import ProviderError, ProviderTimeout, Redactor

__all__ = ["Redactor"]  # re-exported: the sidecar's redactor is the providers' one


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
        details: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.details = details
        """Every problem found, ``{"field", "message"}`` each (a definition refused)."""
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type

    def body(self) -> dict[str, object]:
        error: dict[str, object] = {
            "message": self.message,
            "type": self.type,
            "code": self.code,
            "param": self.param,
        }
        if self.details is not None:
            error["details"] = self.details
        return {"error": error}


class BadRequest(SidecarError):
    """400: the request cannot be understood (JSON, unknown prompt, variables)."""

    status = 400
    type = "invalid_request_error"


class RenderFailed(BadRequest):
    """400 ``template_render_failed``: the routed variant's template cannot use the
    call's values. The message names the variables, never the template's text;
    ``detail`` is the whole story, for the sidecar's log."""

    def __init__(self, message: str, *, detail: str, param: str | None = None) -> None:
        super().__init__(message, code="template_render_failed", param=param)
        self.detail = detail


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


def from_provider(err: ProviderError) -> SidecarError:
    """The OpenAI-shaped error a client sees for a failed model call.

    Client mistakes the upstream reports (400, 404, 422...) keep their status and the
    upstream's ``error.code`` (``model_not_found``), so an SDK behaves as with the
    provider; 429 stays 429 so SDKs back off; a model naming no configured provider is
    the client's 400; everything else the client can do nothing
    about (5xx, rejected provider key, TLS, bad answers) is 502, timeouts 504.
    """
    if err.kind == "not_configured":
        return BadRequest(err.message, code="model_not_found", param="model")
    if err.kind == "route_not_allowed":
        return BadRequest(err.message, code="model_not_allowed", param="model")
    if isinstance(err, ProviderTimeout):
        return UpstreamTimeout(err.message, kind=err.kind, upstream_status=err.upstream_status)
    type_ = "invalid_request_error" if 400 <= err.status < 500 and err.status != 429 else None
    mapped = UpstreamError(
        err.message,
        kind=err.kind,
        upstream_status=err.upstream_status,
        status=err.status,
        # The client's own mistake keeps the upstream's code (``model_not_found``), so an
        # SDK or app that branches on it behaves as with the provider.
        code=err.upstream_code if type_ is not None else None,
    )
    if err.status == 429:
        mapped.type = "rate_limit_error"
    elif type_ is not None:
        mapped.type = type_
    return mapped


def error_response(
    error: SidecarError, redactor: Redactor | None = None, headers: dict[str, str] | None = None
) -> web.Response:
    """The JSON response for ``error``, with its message redacted."""
    body = error.body()
    if redactor is not None:
        body["error"]["message"] = redactor.redact(error.message)  # type: ignore[index]
        if error.details is not None:
            body["error"]["details"] = [  # type: ignore[index]
                {k: redactor.redact(v) for k, v in problem.items()} for problem in error.details
            ]
    return web.Response(
        status=error.status,
        body=json.dumps(body).encode(),
        content_type="application/json",
        headers=headers,
    )
