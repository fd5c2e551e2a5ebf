"""The live prompt set: the prompt files loaded at start, plus prompts and variants
defined at run time (see :mod:`sidecar.definitions`).

The one place the sidecar talks to the prompt kernel (:mod:`prompts`): validation,
rendering, adding a variant or a prompt. Specs are immutable; a change swaps in a new
:class:`~prompts.PromptSpec` and tells the listeners (the router) about it. The prompts
given at construction are the prompt files: :meth:`from_file` says which ids they own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from promptlab.prompts import (
    DEFAULT_LIMITS,
    PromptSpec,
    RecordedValue,
    Renderer,
    RenderError,
    RenderLimits,
    VariableError,
    VariantSpec,
)
from promptlab.prompts.analytics import cut
from promptlab.providers import Redactor
from promptlab.sidecar.errors import BadRequest, RenderFailed

Listener = Callable[[Any], None]


class Catalog:
    """Prompts by id, with a shared :class:`~prompts.Renderer`."""

    def __init__(
        self, prompts: Mapping[str, PromptSpec], *, limits: RenderLimits = DEFAULT_LIMITS
    ) -> None:
        self._prompts: dict[str, PromptSpec] = dict(prompts)
        self._files = frozenset(self._prompts)
        self._renderer = Renderer(limits=limits)
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(spec)`` whenever a prompt changes."""
        self._listeners.append(listener)

    def get(self, prompt_id: str) -> PromptSpec | None:
        return self._prompts.get(prompt_id)

    def require(self, prompt_id: str) -> PromptSpec:
        """The prompt, or a 400 naming the known ones."""
        prompt = self._prompts.get(prompt_id)
        if prompt is None:
            known = ", ".join(sorted(self._prompts)) or "none"
            raise BadRequest(
                f"unknown prompt {prompt_id!r} (known: {known})",
                code="unknown_prompt",
                param="model",
            )
        return prompt

    def from_file(self, prompt_id: str) -> bool:
        """True when a prompt file defines ``prompt_id`` (then the file wins over the API)."""
        return prompt_id in self._files

    def all(self) -> list[PromptSpec]:
        return [self._prompts[k] for k in sorted(self._prompts)]

    def __len__(self) -> int:
        return len(self._prompts)

    def validate(self, prompt: PromptSpec, values: Mapping[str, Any] | None) -> dict[str, Any]:
        """Validated, formatted values; a 400 naming the variable and the rule otherwise."""
        try:
            return prompt.variables_validator(values)
        except VariableError as exc:
            raise BadRequest(
                f"variable {exc.variable!r}: {exc.rule}: {exc.message}",
                code=f"invalid_variable.{exc.rule}",
                param=f"promptlab.variables.{exc.variable}",
            ) from None

    def recorded_values(
        self, prompt: PromptSpec, values: Mapping[str, Any], redactor: Redactor
    ) -> dict[str, RecordedValue] | None:
        """What analytics may keep of a call's validated ``values`` (None: nothing).

        Only the variables the prompt lets analytics record (:mod:`prompts.analytics`);
        a string the redactor would change (a provider key, a key-shaped token) is left
        out whole, then the others are cut to ``prompts.MAX_VALUE_CHARS``.
        """
        picked = prompt.value_picker(values)
        if picked is None:
            return None
        for name, value in list(picked.items()):
            if isinstance(value, str):
                if redactor.redact(value) != value:
                    del picked[name]
                else:
                    picked[name] = cut(value)
        return picked or None

    def render(
        self, prompt: PromptSpec, variant: VariantSpec, values: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """The variant's messages for validated ``values``; :class:`RenderFailed` (a 400
        naming the variables the failing line reads) when its template cannot use them."""
        try:
            return list(self._renderer.render(prompt, variant, values))
        except RenderError as exc:
            raise render_failed(exc) from None

    def add_variant(self, prompt_id: str, variant: VariantSpec) -> PromptSpec:
        """Add (or replace) a variant; every rule of the prompt runs again.

        Raises ``KeyError`` for an unknown prompt and pydantic's ``ValidationError`` (or
        :class:`prompts.SpecError`) for a variant the prompt cannot take.
        """
        spec = self._prompts[prompt_id].with_variant(variant)
        self._prompts[prompt_id] = spec
        for listener in self._listeners:
            listener(spec)
        return spec

    def put_prompt(self, spec: PromptSpec) -> None:
        """Add a prompt, or replace the prompt of the same id, whole."""
        self._prompts[spec.id] = spec
        for listener in self._listeners:
            listener(spec)


def render_failed(exc: RenderError) -> RenderFailed:
    """What a caller is told of a rendering failure: the variant, the variables, the
    kind of failure and where, but no text of the template (the caller has not seen it)."""
    names = ", ".join(repr(n) for n in exc.variables)
    values = (
        f"the value of {names}" if len(exc.variables) == 1
        else f"the values of {names}" if exc.variables
        else "this call's variables"
    )  # fmt: skip
    where = f"{exc.part} template" if exc.part else "template"
    if exc.line is not None:
        where += f", line {exc.line}"
    return RenderFailed(
        f"variant {exc.variant!r} of prompt {exc.prompt_id!r} cannot be rendered with "
        f"{values}: {exc.reason} ({where})",
        detail=str(exc),
        param=f"promptlab.variables.{exc.variables[0]}" if len(exc.variables) == 1 else None,
    )
