"""Per-request validation and formatting of a prompt's variables.

A prompt declares typed variables (:class:`prompts.spec.VariableSpec`); every call
supplies values. :func:`validate_variables` checks them against the declarations and
returns the values to render, formatted and with defaults applied. It runs on the
sidecar's hot path, so each prompt compiles its rules once into a
:class:`VariablesValidator` (regexes compiled, defaults pre-formatted) and reuses it.

For a string the steps run in this order, so that rules judge what will be rendered
and the prompt author's own prefix/suffix never counts against the caller:

1. type check (no coercion: ``"5"`` is not a number);
2. ``trim``, then ``lower`` / ``upper``, then truncation to ``format.max_length``;
3. ``min_length``, ``max_length``, ``pattern`` (``re.search``), ``enum``;
4. ``prefix`` and ``suffix``.

Numbers check ``type``, ``min`` / ``max`` and ``enum``; arrays and objects check their
item / key count against ``min_length`` / ``max_length``. A missing (or ``null``) value
takes the default; a missing required value is an error; a missing optional value
without a default is left out, so templates test it with ``{% if x is defined %}``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # spec.py imports this module; the models are only needed for typing
    from prompts.spec import PromptSpec, VariableSpec

Check = Callable[[Any], Any]
"""Validates and formats one value; raises :class:`VariableError`."""


class VariableError(ValueError):
    """A variable's value breaks a rule of its declaration.

    ``rule`` is the declaration key that failed (``required``, ``type``, ``max_length``,
    ``pattern``, ``enum``, ``minimum``, ``maximum``, ``min_length``, or ``unknown`` for a
    value the prompt does not declare).
    """

    def __init__(self, variable: str, rule: str, message: str) -> None:
        super().__init__(f"variable {variable!r}: {rule}: {message}")
        self.variable = variable
        self.rule = rule
        self.message = message


def json_type(value: object) -> str:
    """The JSON Schema name of ``value``'s type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _coerce_type(kind: str, value: Any) -> Any:
    """``value`` if it has JSON type ``kind`` (integral floats count as integers), else raise."""
    if kind == "string":
        ok = isinstance(value, str)
    elif kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif kind == "integer":
        if isinstance(value, float) and value.is_integer():
            return int(value)  # JSON clients may send 5.0 for 5
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "boolean":
        ok = isinstance(value, bool)
    elif kind == "array":
        if isinstance(value, tuple):
            return list(value)
        ok = isinstance(value, list)
    else:  # object
        ok = isinstance(value, dict)
    if not ok:
        raise TypeError(f"expected {kind}, got {json_type(value)}")
    return value


def compile_check(var: VariableSpec) -> Check:
    """One function that validates and formats values of ``var``, rules precompiled."""
    name, kind = var.name, var.type
    fmt = var.format
    trim, lower, upper = fmt.trim, fmt.lower, fmt.upper
    truncate = fmt.max_length
    prefix, suffix = fmt.prefix, fmt.suffix
    min_len, max_len = var.min_length, var.max_length
    minimum, maximum = var.minimum, var.maximum
    regex = re.compile(var.pattern) if var.pattern is not None else None
    enum = tuple(var.enum) if var.enum is not None else None
    unit = "characters" if kind == "string" else "keys" if kind == "object" else "items"

    def check(value: Any) -> Any:
        try:
            value = _coerce_type(kind, value)
        except TypeError as exc:
            raise VariableError(name, "type", str(exc)) from None
        if kind == "string":
            if trim:
                value = value.strip()
            if lower:
                value = value.lower()
            elif upper:
                value = value.upper()
            if truncate is not None and len(value) > truncate:
                value = value[:truncate]
        if min_len is not None and len(value) < min_len:
            raise VariableError(
                name, "min_length", f"{len(value)} {unit}, at least {min_len} required"
            )
        if max_len is not None and len(value) > max_len:
            raise VariableError(
                name, "max_length", f"{len(value)} {unit}, at most {max_len} allowed"
            )
        if minimum is not None and value < minimum:
            raise VariableError(name, "minimum", f"{value} is below the minimum {minimum}")
        if maximum is not None and value > maximum:
            raise VariableError(name, "maximum", f"{value} is above the maximum {maximum}")
        if regex is not None and regex.search(value) is None:
            raise VariableError(name, "pattern", f"does not match {regex.pattern!r}")
        if enum is not None and value not in enum:
            allowed = ", ".join(repr(v) for v in enum)
            raise VariableError(name, "enum", f"{value!r} is not one of {allowed}")
        if prefix or suffix:
            value = f"{prefix}{value}{suffix}"
        return value

    return check


def check_value(var: VariableSpec, value: Any) -> Any:
    """Validate and format one value of ``var`` (uncached: for load-time checks)."""
    return compile_check(var)(value)


class VariablesValidator:
    """A prompt's variable rules, compiled once; call it with each request's values."""

    __slots__ = ("_checks", "_declared", "_defaults", "_required")

    def __init__(self, variables: Sequence[VariableSpec]) -> None:
        self._checks: dict[str, Check] = {v.name: compile_check(v) for v in variables}
        # Defaults are formatted once here, not on every call that omits them.
        self._defaults: dict[str, Any] = {
            v.name: self._checks[v.name](v.default) for v in variables if v.default is not None
        }
        self._required = frozenset(v.name for v in variables if v.required)
        self._declared = ", ".join(v.name for v in variables) or "none"

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


def validate_variables(prompt: PromptSpec, values: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check ``values`` against ``prompt``'s declared variables and format them.

    Returns a new dict to render with: formatted values plus defaults for missing ones.
    Raises :class:`VariableError` naming the variable and the rule, e.g.
    ``variable 'code': max_length: 5001 characters, at most 5000 allowed``; values the
    prompt does not declare are rejected (rule ``unknown``).
    """
    return prompt.variables_validator(values)
