"""Routed prompts on the legacy ``POST /v1/completions``: one prompt string in, text out.

Some clients call the completions endpoint by default (LlamaIndex's ``OpenAILike``).
A routed call there is served as a chat completion of the variant the router picks:
the variant's rendered messages, then the call's ``prompt`` as the app's user message,
sent to the variant's chat model (chat models do not serve ``/v1/completions``, and a
variant is written as messages). The answer comes back in the ``text_completion``
shape the client expects, with the same execution id, headers and recording as any
routed call. Parameters only the legacy endpoint has are refused with a 400 rather than
silently ignored; streaming a routed prompt is served on ``/v1/chat/completions``.
"""

from __future__ import annotations

from typing import Any

from promptlab.sidecar.errors import BadRequest

CHAT_ONLY = "/v1/chat/completions"

# Legacy parameters with no chat equivalent: refusing them says why the answer would differ.
_UNSUPPORTED = {
    "echo": lambda v: v is True,
    "suffix": lambda v: v not in (None, ""),
    "best_of": lambda v: v not in (None, 1),
    "logprobs": lambda v: v is not None,
}


def _prompt_text(prompt: Any) -> str:
    if prompt is None:
        return ""
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise BadRequest(
            "a routed prompt on /v1/completions takes one 'prompt' string (no batches or "
            f"token arrays); send several calls, or use {CHAT_ONLY}",
            param="prompt",
        )
    return prompt


def completion_as_chat(body: dict[str, Any]) -> dict[str, Any]:
    """The chat body of a routed completions call: ``prompt`` becomes the app's user message."""
    if body.get("stream") is True:
        raise BadRequest(
            f"streaming a routed prompt is served on {CHAT_ONLY}; /v1/completions answers "
            "routed prompts without streaming",
            param="stream",
        )
    for key, refused in _UNSUPPORTED.items():
        if key in body and refused(body[key]):
            raise BadRequest(
                f"{key!r} is not supported for a routed prompt on /v1/completions (it is "
                f"served by a chat model); leave it out or use {CHAT_ONLY}",
                param=key,
            )
    chat = {k: v for k, v in body.items() if k not in _UNSUPPORTED and k != "prompt"}
    text = _prompt_text(body.get("prompt"))
    chat["messages"] = [{"role": "user", "content": text}] if text else []
    return chat


def chat_as_completion(data: dict[str, Any]) -> dict[str, Any]:
    """A ``chat.completion`` answer in the ``text_completion`` shape."""
    choices = []
    for i, choice in enumerate(data.get("choices") or []):
        choice = choice if isinstance(choice, dict) else {}
        message = choice.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        choices.append(
            {
                "index": choice.get("index", i),
                "text": content if isinstance(content, str) else "",
                "logprobs": None,
                "finish_reason": choice.get("finish_reason"),
            }
        )
    answer = {
        "id": data.get("id"),
        "object": "text_completion",
        "created": data.get("created", 0),
        "model": data.get("model"),
        "choices": choices,
    }
    for key in ("usage", "system_fingerprint"):
        if key in data:
            answer[key] = data[key]
    return answer
