"""The one seam through which the lab calls models.

The runner, the LLM judge and the optimiser need only :class:`ModelClient`: "complete
this chat body on ``provider/model``". ``providers.Providers`` satisfies it as it is;
tests run it against a real OpenAI-compatible fake HTTP upstream through ``Providers``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


class CompletionLike(Protocol):
    """What the lab reads of a completed call (``providers.Completion`` has these)."""

    @property
    def data(self) -> dict[str, Any]: ...
    @property
    def latency_ms(self) -> float: ...
    @property
    def prompt_tokens(self) -> int: ...
    @property
    def completion_tokens(self) -> int: ...
    @property
    def cost_usd(self) -> float | None: ...


@runtime_checkable
class ModelClient(Protocol):
    """Calls a model; raises an exception (``providers.ProviderError``) on failure."""

    async def complete(
        self, model: str, body: dict[str, Any], *, timeout_s: float | None = None
    ) -> CompletionLike: ...


def output_text(data: dict[str, Any]) -> str:
    """The assistant text of an OpenAI chat.completion dict ("" when there is none)."""
    try:
        content = data["choices"][0]["message"].get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        return ""
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def error_kind(exc: BaseException) -> str:
    """A short, secret-free name for a failed call: the error's ``kind`` or its class."""
    kind = getattr(exc, "kind", None)
    return str(kind) if kind else type(exc).__name__
