"""The ``[[evaluators]]`` entries of experiment and prompt files, one model per kind."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Eval(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str | None = None
    """Name in reports (default: the kind, numbered when repeated)."""
    weight: float = Field(default=1.0, ge=0.0)


class ExactSpec(_Eval):
    kind: Literal["exact"]
    value: str | None = None
    """Text wanted (default: the case's ``expected``)."""
    case_sensitive: bool = False
    strip: bool = True


class ContainsSpec(_Eval):
    kind: Literal["contains"]
    value: str | list[str] | None = None
    """Text(s) wanted (default: the case's ``expected``)."""
    mode: Literal["all", "any"] = "all"
    case_sensitive: bool = False
    partial: bool = False
    """Score the share of values found instead of 0/1 (mode ``all``)."""


class RegexSpec(_Eval):
    kind: Literal["regex"]
    pattern: str
    flags: str = ""
    """Any of ``i`` (ignore case), ``m`` (multiline), ``s`` (dot matches newline)."""

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        import re

        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return value


class JsonValidSpec(_Eval):
    kind: Literal["json_valid"]


class JsonSchemaSpec(_Eval):
    kind: Literal["json_schema"]
    json_schema: dict[str, Any] = Field(alias="schema")

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        import jsonschema

        try:
            jsonschema.validators.validator_for(value).check_schema(value)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"not a JSON schema: {exc.message}") from None
        return value


class NumericSpec(_Eval):
    kind: Literal["numeric"]
    value: float | None = None
    """Number wanted (default: the first number in the case's ``expected``)."""
    tolerance: float = Field(default=0.0, ge=0.0)
    relative: bool = False
    """``tolerance`` is a share of the wanted value rather than an absolute distance."""


class LengthSpec(_Eval):
    kind: Literal["length"]
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)
    unit: Literal["chars", "words"] = "chars"


class PythonSpec(_Eval):
    kind: Literal["python"]
    function: str
    """``module:function`` called as ``f(output, expected=..., inputs=...)``; returns a
    number in 0..1, a bool, or ``(score, reason)``."""

    @field_validator("function")
    @classmethod
    def _shape(cls, value: str) -> str:
        module, _, name = value.partition(":")
        if not module or not name:
            raise ValueError(f"expected 'module:function', got {value!r}")
        return value


class JudgeSpec(_Eval):
    kind: Literal["judge"]
    model: str
    """``provider/model`` of the judge."""
    rubric: str
    reference: bool = True
    """Show the judge the case's ``expected`` output (when the case has one)."""
    params: dict[str, Any] = Field(default_factory=lambda: {"temperature": 0.0})


EvaluatorSpec = Annotated[
    ExactSpec
    | ContainsSpec
    | RegexSpec
    | JsonValidSpec
    | JsonSchemaSpec
    | NumericSpec
    | LengthSpec
    | PythonSpec
    | JudgeSpec,
    Field(discriminator="kind"),
]
"""Any evaluator entry; ``kind`` selects the model."""
