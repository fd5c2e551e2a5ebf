"""A prompt's typed input: :class:`VariableSpec` and its formatting, :class:`FormatSpec`.

Formatting keys of a variable may be written flat or under a ``format`` table::

    [[variables]]                               [[variables]]
    name = "code"                               name = "code"
    trim = true                                 format = { trim = true, max_length = 4000 }
    truncate = 4000

``max_length`` at the variable's top level *rejects* a longer value; ``format.max_length``
(flat: ``truncate``) *cuts* it. ``min`` / ``max`` are accepted for ``minimum`` /
``maximum``. How values are checked is :mod:`prompts.values`; which values analytics may
record (``analytics``) is :mod:`prompts.analytics`.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import AliasChoices, Field, model_validator

from promptlab.prompts.base import SpecModel
from promptlab.prompts.errors import SpecError, VariableError
from promptlab.prompts.templates import FORBIDDEN_PATTERN
from promptlab.prompts.values import check_value, json_type

VariableType = Literal["string", "number", "integer", "boolean", "array", "object"]
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# Names Jinja2 treats as literals, operators or its own context: a variable of that name
# could never be read by a template.
_RESERVED_NAMES = frozenset(
    {"true", "false", "none", "True", "False", "None", "and", "or", "not", "in", "is",
     "if", "else", "loop", "self", "super", "varargs", "kwargs", "caller"}
)  # fmt: skip

_FORMAT_KEYS = {"trim", "lower", "upper", "prefix", "suffix", "truncate"}


class FormatSpec(SpecModel):
    """How a string value is normalised before it is checked and rendered."""

    trim: bool = False
    """Strip surrounding whitespace."""
    lower: bool = False
    """Lower-case the value."""
    upper: bool = False
    """Upper-case the value."""
    max_length: int | None = Field(
        default=None, ge=1, validation_alias=AliasChoices("max_length", "truncate")
    )
    """Cut the value to this many characters (flat key: ``truncate``)."""
    prefix: str = ""
    """Text put before the value after it passed its checks."""
    suffix: str = ""
    """Text put after the value after it passed its checks."""

    @property
    def active(self) -> bool:
        """True when any formatting applies."""
        return self != _NO_FORMAT


_NO_FORMAT = FormatSpec()


class VariableSpec(SpecModel):
    """One typed input of a prompt (``[[variables]]``)."""

    name: str
    type: VariableType = "string"
    required: bool = False
    """A call without this variable is rejected. A required variable has no default."""
    default: Any = None
    """Value used when a call omits the variable; checked against the rules at load."""
    description: str = ""
    min_length: int | None = Field(default=None, ge=0)
    """Fewest characters (string), items (array) or keys (object)."""
    max_length: int | None = Field(default=None, ge=0)
    """Most characters (string), items (array) or keys (object); longer is rejected."""
    minimum: float | None = Field(default=None, validation_alias=AliasChoices("minimum", "min"))
    """Smallest number allowed (TOML key ``min`` also works)."""
    maximum: float | None = Field(default=None, validation_alias=AliasChoices("maximum", "max"))
    """Largest number allowed (TOML key ``max`` also works)."""
    pattern: str | None = None
    """Regular expression the (formatted) string must contain (``re.search``)."""
    enum: list[Any] | None = None
    """The only values allowed."""
    format: FormatSpec = Field(default_factory=FormatSpec)
    """Normalisation of string values; the keys may also be written flat."""
    analytics: bool | None = None
    """Record this variable's values for analytics ("most used values" per period).
    Unset: recorded when they are safe to keep, i.e. the variable has an ``enum`` or is a
    boolean, integer or number; ``true`` opts a string in (values cut to 64 characters);
    ``false`` keeps any variable out. Never for arrays and objects, nor for a variable
    named like a credential (``password``, ``secret``, ``token``, ``api_key``)."""

    @model_validator(mode="before")
    @classmethod
    def _gather_format_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not (_FORMAT_KEYS & data.keys()):
            return data
        data = dict(data)
        fmt = data.get("format", {})
        fmt = dict(fmt) if isinstance(fmt, dict) else fmt
        for key in sorted(_FORMAT_KEYS & data.keys()):
            target = "max_length" if key == "truncate" else key
            if isinstance(fmt, dict) and (target in fmt or key in fmt):
                raise SpecError([(key, "given both flat and under 'format'; keep one")])
            if isinstance(fmt, dict):
                fmt[target] = data.pop(key)
        data["format"] = fmt
        return data

    @model_validator(mode="after")
    def _check_rules(self) -> VariableSpec:
        problems: list[tuple[str, str]] = []
        kind = self.type
        if not VARIABLE_NAME.match(self.name):
            problems.append(("name", f"{self.name!r} is not an identifier (letters, digits, _)"))
        elif self.name in _RESERVED_NAMES:
            problems.append(("name", f"{self.name!r} is reserved by the template language"))
        if kind not in ("string", "array", "object"):
            for key in ("min_length", "max_length"):
                if getattr(self, key) is not None:
                    problems.append((key, f"applies to string, array or object, not {kind}"))
        elif (
            self.min_length is not None
            and self.max_length is not None
            and self.min_length > self.max_length
        ):
            problems.append(("min_length", "is greater than max_length"))
        if kind not in ("number", "integer"):
            for key in ("minimum", "maximum"):
                if getattr(self, key) is not None:
                    problems.append((key, f"applies to number or integer, not {kind}"))
        elif self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            problems.append(("minimum", "is greater than maximum"))
        if self.pattern is not None:
            if kind != "string":
                problems.append(("pattern", f"applies to string, not {kind}"))
            try:
                re.compile(self.pattern)
            except re.error as exc:
                problems.append(("pattern", f"not a valid regular expression: {exc}"))
        if self.format.active and kind != "string":
            problems.append(("format", f"formatting applies to string, not {kind}"))
        if self.format.lower and self.format.upper:
            problems.append(("format", "lower and upper exclude each other"))
        if self.enum is not None:
            if not self.enum:
                problems.append(("enum", "must list at least one value"))
            for i, value in enumerate(self.enum):
                if kind in ("array", "object") or json_type(value) not in _ACCEPTS[kind]:
                    problems.append((f"enum[{i}]", f"{value!r} is not a {kind}"))
        if self.required and self.default is not None:
            problems.append(("default", "a required variable takes no default"))
        if self.analytics:
            if kind in ("array", "object"):
                problems.append(("analytics", f"values of an {kind} are never recorded"))
            elif FORBIDDEN_PATTERN.search(self.name):
                problems.append(
                    ("analytics", f"{self.name!r} reads like a credential: never recorded")
                )
        if problems:
            raise SpecError(problems)
        if self.default is not None:
            try:
                check_value(self, self.default)
            except VariableError as exc:
                raise SpecError([("default", f"{exc.rule}: {exc.message}")]) from None
        return self


_ACCEPTS = {
    "string": {"string"},
    "number": {"number", "integer"},
    "integer": {"integer"},
    "boolean": {"boolean"},
    "array": {"array"},
    "object": {"object"},
}
