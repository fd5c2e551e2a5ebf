"""Request shaping: what the sidecar makes of a client's body before any model is called.

* ``promptlab`` is removed from the body: ``promptlab.variables`` (an object) are
  validated against the prompt's declarations, ``promptlab.subject`` (a string) is the
  app's user or session, used for sticky routing and recorded.
* On every route, keys that could redirect or re-credential the call (``api_base``,
  ``base_url``, ``api_key``, ...) are dropped, and no client header is forwarded: the
  upstream URL and key always come from the provider settings.
* Routed calls: the variant's rendered messages (system if the variant has one, then
  user) come first, followed by the app's own messages in order. The app's ``system``
  and ``developer`` messages go where the prompt's ``app_system`` says: dropped by
  default (the template owns the instructions), before the rendered messages
  (``prepend``) or after the variant's system message (``append``). The variant's
  ``params`` override the request's parameters of the same name. Every other parameter
  (tools, tool_choice, response_format, temperature, n, seed, user, ...) passes through.
"""

from __future__ import annotations

import json
from typing import Any

from promptlab.providers.safety import UNSAFE_KEYS
from promptlab.sidecar import codec
from promptlab.sidecar.errors import BadRequest
from promptlab.sidecar.inputs import check_text, check_values

OVERRIDE_KEYS = UNSAFE_KEYS
"""Body keys that could point a call elsewhere or change its credentials (litellm reads
many of them as arguments); dropped from every request (and again by ``providers``)."""

SYSTEM_ROLES = frozenset({"system", "developer"})


def parse_body(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object; 400 otherwise."""
    try:
        body = codec.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", code="invalid_json")
    return body


def strip_overrides(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` without the keys that could redirect or re-credential a call (in place)."""
    for key in OVERRIDE_KEYS.intersection(body):
        del body[key]
    return body


def parse_meta(meta: Any) -> tuple[dict[str, Any] | None, str | None]:
    """``(variables, subject)`` from the body's ``promptlab`` field."""
    if meta is None:
        return None, None
    if not isinstance(meta, dict):
        raise BadRequest(
            '\'promptlab\' must be an object: {"variables": {...}, "subject": "..."}',
            param="promptlab",
        )
    variables = meta.get("variables")
    if variables is not None and not isinstance(variables, dict):
        raise BadRequest("'promptlab.variables' must be an object", param="promptlab.variables")
    if variables:
        check_values(variables, "promptlab.variables")
    subject = meta.get("subject")
    if subject is not None:
        if isinstance(subject, bool) or not isinstance(subject, str | int):
            raise BadRequest("'promptlab.subject' must be a string", param="promptlab.subject")
        subject = check_text(str(subject), "promptlab.subject")
    return variables, subject


def app_messages(body: dict[str, Any]) -> list[Any]:
    """The app's messages as a list (400 when not a list)."""
    messages = body.get("messages")
    if messages is None:
        return []
    if not isinstance(messages, list):
        raise BadRequest("'messages' must be an array", param="messages")
    return messages


def split_messages(body: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    """The app's messages as ``(system and developer messages, the others)``, in order."""
    instructions: list[Any] = []
    others: list[Any] = []
    for m in app_messages(body):
        (instructions if isinstance(m, dict) and m.get("role") in SYSTEM_ROLES else others).append(
            m
        )
    return instructions, others


def routed_messages(
    rendered: list[dict[str, Any]], app_system: list[Any], others: list[Any], mode: str
) -> list[Any]:
    """A routed call's messages: the variant's, the app's instructions where ``mode``
    (the prompt's ``app_system``) puts them, then the app's other messages."""
    if mode == "drop" or not app_system:
        return rendered + others if others else rendered
    if mode == "prepend":
        return app_system + rendered + others
    at = 1 if rendered and rendered[0].get("role") == "system" else 0  # "append"
    return rendered[:at] + app_system + rendered[at:] + others


def routed_body(
    body: dict[str, Any], params: dict[str, Any], messages: list[Any]
) -> dict[str, Any]:
    """The upstream body of a routed call: the client's, the variant's params over it."""
    shaped = dict(body)
    shaped.update(params)
    shaped["messages"] = messages
    return strip_overrides(shaped)  # a variant registered through /admin is input too


def with_stream_usage(body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """``body`` asking the upstream for usage in the stream, and whether the client asked."""
    options = body.get("stream_options")
    client_wants_usage = isinstance(options, dict) and options.get("include_usage") is True
    shaped = {
        **body,
        "stream_options": {**(options if isinstance(options, dict) else {}), "include_usage": True},
    }
    return shaped, client_wants_usage


def with_execution_id(data: dict[str, Any], raw: bytes | None, execution_id: str) -> bytes:
    """The response body with ``id`` set to the execution id.

    The upstream's bytes are kept when its id can be swapped in place (the usual case:
    no second JSON encoding on the hot path); otherwise the parsed body is re-encoded.
    """
    old = data.get("id")
    if raw is not None and isinstance(old, str) and old:
        quoted = json.dumps(old).encode()
        for needle in (b'"id":' + quoted, b'"id": ' + quoted):
            at = raw.find(needle)
            if at != -1:
                return raw[:at] + b'"id":"' + execution_id.encode() + b'"' + raw[at + len(needle) :]
    data["id"] = execution_id
    return codec.dumps(data)
