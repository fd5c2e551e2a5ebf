"""The mutator: one call to the configured model per mutant, through ``providers``.

:class:`LLMMutator` is given the call to make (``complete(model, body)``, the signature
of ``providers.Providers.complete``) rather than building a client itself, so the lab's
runner, the CLI and the learner share one set of providers and their spend accounting.
Every failure (the call raising, an error answer, an unusable answer) becomes a
:class:`~lab.mutation.answer.MutatorError` that the search reports.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from promptlab.lab.mutation.answer import MutantDraft, MutatorError, parse_answer
from promptlab.lab.mutation.operators import Instructions, MutationRequest, build_messages


class CompletionLike(Protocol):
    """What the mutator reads from a provider's answer (``providers.Completion``)."""

    @property
    def data(self) -> dict[str, Any]: ...
    @property
    def cost_usd(self) -> float | None: ...


Complete = Callable[[str, dict[str, Any]], Awaitable[CompletionLike]]
"""``await complete("provider/model", body)``: one chat completion."""


@dataclass(frozen=True)
class Mutation:
    """A mutator's answer and what it cost."""

    draft: MutantDraft
    cost_usd: float
    calls: int = 1
    """Calls it took (2 when the provider refused JSON mode first)."""


class Mutator(Protocol):
    """Anything that turns a :class:`MutationRequest` into a draft (or raises MutatorError)."""

    async def mutate(self, request: MutationRequest) -> Mutation: ...


@dataclass(frozen=True)
class LLMMutator:
    """Asks ``model`` for a mutant, in JSON mode when ``json_mode`` (the default)."""

    complete: Complete
    model: str
    instructions: Instructions
    temperature: float = 0.9
    json_mode: bool = True
    """Send ``response_format: json_object``. A provider that answers 400 naming
    ``response_format`` is asked again without it (and from then on)."""
    _no_json_mode: set[str] = field(default_factory=set, repr=False, compare=False)
    """Models whose provider answered 400 to ``response_format``."""

    async def mutate(self, request: MutationRequest) -> Mutation:
        body: dict[str, Any] = {
            "messages": build_messages(request, self.instructions),
            "temperature": self.temperature,
        }
        calls = 1
        json_mode = self.json_mode and self.model not in self._no_json_mode
        if json_mode:
            body["response_format"] = {"type": "json_object"}
        try:
            completion = await self.complete(self.model, body)
        except Exception as exc:  # any provider failure is reported as the mutator's
            if not (json_mode and _rejected_json_mode(exc)):
                raise MutatorError(f"{self.model}: {type(exc).__name__}: {exc}") from None
            # The provider does not take response_format: ask again, plain text allowed.
            self._no_json_mode.add(self.model)
            body.pop("response_format")
            calls = 2
            try:
                completion = await self.complete(self.model, body)
            except Exception as again:
                raise MutatorError(f"{self.model}: {type(again).__name__}: {again}") from None
        cost = float(completion.cost_usd or 0.0)
        try:
            text = completion.data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise MutatorError(f"{self.model}: the answer has no message content") from None
        draft = parse_answer(text, parent_system=request.parent.system)
        return Mutation(draft=draft, cost_usd=cost, calls=calls)


def _rejected_json_mode(exc: Exception) -> bool:
    """A 400 that names ``response_format``: the provider does not support JSON mode."""
    return getattr(exc, "upstream_status", None) == 400 and "response_format" in str(exc)
