"""Checking one value against one variable's rules: the leaf the other modules share.

:func:`compile_check` turns a declaration into one fast function that validates and
formats values of it. It reads the declaration through :class:`VariableRules`, a small
protocol that :class:`prompts.variable_spec.VariableSpec` satisfies, so this module
imports no model and every other module of the package may import it.

Order of work for a string, chosen so that the value checked is the value rendered and
the prompt author's own prefix/suffix never counts against the caller:

1. type check (no coercion: ``"5"`` is not a number), and text check (no NUL, no lone
   surrogate, in strings nested in arrays and objects too);
2. ``trim``, then ``lower`` / ``upper``, then truncation to ``format.max_length``;
3. ``min_length``, ``max_length``, ``pattern`` (``re.search``), ``enum``;
4. ``prefix`` and ``suffix``.

Numbers check ``type``, ``min`` / ``max`` and ``enum``; arrays and objects check their
item / key count against ``min_length`` / ``max_length``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from promptlab.prompts.errors import VariableError

Check = Callable[[Any], Any]
"""Validates and formats one value; raises :class:`VariableError`."""

# A lone surrogate cannot be encoded as UTF-8: it would break every event that carries
# the rendered text. NUL is refused for the same reason in databases and headers.
_SURROGATE = re.compile("[\ud800-\udfff]")
# Beyond 2**53 a float is no longer an exact integer; JSON parsers also turn integers
# too long for 64 bits into such floats (1e30), whose int() no event could carry.
_EXACT_FLOAT_INT = 2**53


class FormatRules(Protocol):
    """What :func:`compile_check` reads of a variable's formatting."""

    @property
    def trim(self) -> bool: ...
    @property
    def lower(self) -> bool: ...
    @property
    def upper(self) -> bool: ...
    @property
    def max_length(self) -> int | None: ...
    @property
    def prefix(self) -> str: ...
    @property
    def suffix(self) -> str: ...


class VariableRules(Protocol):
    """What :func:`compile_check` reads of a variable's declaration."""

    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def format(self) -> FormatRules: ...
    @property
    def min_length(self) -> int | None: ...
    @property
    def max_length(self) -> int | None: ...
    @property
    def minimum(self) -> float | None: ...
    @property
    def maximum(self) -> float | None: ...
    @property
    def pattern(self) -> str | None: ...
    @property
    def enum(self) -> Sequence[Any] | None: ...


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


def text_problem(text: str) -> str | None:
    """Why ``text`` is not safe text (NUL, lone surrogate), or None when it is."""
    if "\x00" in text:
        return "contains a NUL character"
    if not text.isascii() and (match := _SURROGATE.search(text)) is not None:
        return f"contains a lone surrogate (U+{ord(match.group()):04X}), which is not text"
    return None


def _nested_text_problem(value: Any) -> str | None:
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, list | tuple):
        for item in value:
            if (problem := _nested_text_problem(item)) is not None:
                return problem
    elif isinstance(value, dict):
        for key, item in value.items():
            if (problem := _nested_text_problem(key)) is not None:
                return f"a key {problem}"
            if (problem := _nested_text_problem(item)) is not None:
                return problem
    return None


def _coerce_type(kind: str, value: Any) -> Any:
    """``value`` if it has JSON type ``kind`` (integral floats count as integers), else raise."""
    if kind == "string":
        ok = isinstance(value, str)
    elif kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif kind == "integer":
        if isinstance(value, float) and value.is_integer() and abs(value) <= _EXACT_FLOAT_INT:
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


def compile_check(var: VariableRules) -> Check:
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
    nested = kind in ("array", "object")

    def check(value: Any) -> Any:
        try:
            value = _coerce_type(kind, value)
        except TypeError as exc:
            raise VariableError(name, "type", str(exc)) from None
        if kind == "string":
            if (problem := text_problem(value)) is not None:
                raise VariableError(name, "text", problem)
            if trim:
                value = value.strip()
            if lower:
                value = value.lower()
            elif upper:
                value = value.upper()
            if truncate is not None and len(value) > truncate:
                value = value[:truncate]
        elif nested and (problem := _nested_text_problem(value)) is not None:
            raise VariableError(name, "text", problem)
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


def check_value(var: VariableRules, value: Any) -> Any:
    """Validate and format one value of ``var`` (uncached: for load-time checks)."""
    return compile_check(var)(value)
