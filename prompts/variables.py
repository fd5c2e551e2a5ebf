"""Per-request validation and formatting of a prompt's variables.

A prompt declares typed variables (:class:`prompts.variable_spec.VariableSpec`); every
call supplies values. :class:`VariablesValidator` checks them against the declarations
and returns the values to render, formatted and with defaults applied. It runs on the
sidecar's hot path, so each prompt compiles its rules once (regexes compiled, defaults
pre-formatted) and reuses the validator; how one value is checked is
:mod:`prompts.values`.

A missing (or ``null``) value takes the default; a missing required value is an error;
a missing optional value without a default is left out of the values, and the renderer
gives the template an empty value for it (:func:`prompts.sandbox.absent`): ``{{ x }}``
renders nothing, and ``{% if x %}`` and ``{% if x is defined %}`` are false. The
validator takes the variable declarations only, never the whole prompt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from promptlab.prompts.errors import VariableError
from promptlab.prompts.values import Check, compile_check
from promptlab.prompts.variable_spec import VariableSpec

__all__ = ["VariableError", "VariablesValidator"]


class VariablesValidator:
    """A prompt's variable rules, compiled once; call it with each request's values."""

    __slots__ = ("_checks", "_declared", "_defaults", "_required", "names")

    def __init__(self, variables: Sequence[VariableSpec]) -> None:
        self._checks: dict[str, Check] = {v.name: compile_check(v) for v in variables}
        # Defaults are formatted once here, not on every call that omits them.
        self._defaults: dict[str, Any] = {
            v.name: self._checks[v.name](v.default) for v in variables if v.default is not None
        }
        self._required = frozenset(v.name for v in variables if v.required)
        self._declared = ", ".join(v.name for v in variables) or "none"
        self.names = frozenset(self._checks)
        """Every declared variable's name."""

    def __call__(self, values: Mapping[str, Any] | None) -> dict[str, Any]:
        """Validated, formatted values with defaults; raise :class:`VariableError`."""
        values = values or {}
        out: dict[str, Any] = {}
        checks = self._checks
        for name, value in values.items():
            check = checks.get(name)
            if check is None:
                raise VariableError(
                    str(name),
                    "unknown",
                    f"not declared by this prompt (declared: {self._declared})",
                )
            if value is not None:
                out[name] = check(value)
        if len(out) < len(checks):
            for name in checks:
                if name in out:
                    continue
                if name in self._defaults:
                    out[name] = self._defaults[name]
                elif name in self._required:
                    raise VariableError(name, "required", "missing, and this prompt requires it")
        return out

    def problems(self, values: Mapping[str, Any] | None) -> list[VariableError]:
        """Every rule ``values`` break, one error per variable (a call stops at the first;
        ``promptlab prompts render`` lists them all)."""
        values = values or {}
        found: list[VariableError] = []
        for name, value in values.items():
            check = self._checks.get(name)
            if check is None:
                found.append(
                    VariableError(
                        str(name),
                        "unknown",
                        f"not declared by this prompt (declared: {self._declared})",
                    )
                )
            elif value is not None:
                try:
                    check(value)
                except VariableError as exc:
                    found.append(exc)
        for name in self._checks:
            if values.get(name) is None and name in self._required and name not in self._defaults:
                found.append(
                    VariableError(name, "required", "missing, and this prompt requires it")
                )
        return found
