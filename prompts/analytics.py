"""Which variable values a call may leave in analytics, and in what form.

Analytics count the most used values of a prompt's variables per period. Variable
values can be a user's own text, so only values that are safe to keep are recorded:

* a variable with an ``enum``, or of type boolean, integer or number, unless its
  declaration says ``analytics = false``;
* a string variable only when its declaration opts in with ``analytics = true``;
* never an array or an object, never a variable named like a credential
  (:data:`prompts.templates.FORBIDDEN_PATTERN`), never a number that is not finite.

A recorded string is the value the template saw, without the author's own ``prefix`` /
``suffix``, cut to :data:`MAX_VALUE_CHARS` characters. The caller (the sidecar) also
drops any value its secret redactor would change, before anything is cut.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from promptlab.prompts.templates import FORBIDDEN_PATTERN
from promptlab.prompts.variable_spec import VariableSpec

__all__ = ["MAX_VALUE_CHARS", "RecordedValue", "ValuePicker", "recorded_by_default", "records"]

MAX_VALUE_CHARS = 64
"""Longest recorded string value; longer ones are cut to this many characters."""

RecordedValue = str | bool | int | float
"""What a recorded value may be."""


def recorded_by_default(spec: VariableSpec) -> bool:
    """Whether ``spec``'s values are safe to record without the author saying so."""
    return spec.enum is not None or spec.type in ("boolean", "integer", "number")


def records(spec: VariableSpec) -> bool:
    """Whether analytics record ``spec``'s values (its ``analytics`` key, else the default)."""
    if spec.type in ("array", "object") or FORBIDDEN_PATTERN.search(spec.name):
        return False
    return recorded_by_default(spec) if spec.analytics is None else spec.analytics


def cut(text: str) -> str:
    """``text`` cut to :data:`MAX_VALUE_CHARS` characters."""
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS]


class ValuePicker:
    """A prompt's recordable variables, decided once; call it with a call's values."""

    __slots__ = ("_affixes", "_names")

    def __init__(self, variables: Sequence[VariableSpec]) -> None:
        chosen = [v for v in variables if records(v)]
        self._names: tuple[str, ...] = tuple(v.name for v in chosen)
        # The author's prefix/suffix are the prompt's text, not the caller's value.
        self._affixes: dict[str, tuple[int, int]] = {
            v.name: (len(v.format.prefix), len(v.format.suffix))
            for v in chosen
            if v.type == "string" and (v.format.prefix or v.format.suffix)
        }

    @property
    def names(self) -> tuple[str, ...]:
        """The variables whose values are recorded, in declaration order."""
        return self._names

    def __call__(self, values: Mapping[str, Any]) -> dict[str, RecordedValue] | None:
        """The recordable part of validated, formatted ``values`` (None: nothing to record).

        Strings come back whole (without prefix/suffix): the caller screens them for
        secrets and then cuts them with :func:`cut`.
        """
        if not self._names:
            return None
        out: dict[str, RecordedValue] = {}
        for name in self._names:
            value = values.get(name)
            if isinstance(value, str):
                affix = self._affixes.get(name)
                if affix is not None:
                    value = value[affix[0] : len(value) - affix[1]]
                out[name] = value
            elif isinstance(value, bool | int):
                out[name] = value
            elif isinstance(value, float) and math.isfinite(value):
                out[name] = value
        return out or None
