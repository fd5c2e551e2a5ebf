"""Rule evaluators: exact, contains, regex, JSON valid, JSON schema, numeric, length, Python."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from typing import Any

from promptlab.lab.evaluators.base import EvalContext, EvalResult
from promptlab.lab.evaluators.specs import (
    ContainsSpec,
    ExactSpec,
    JsonSchemaSpec,
    JsonValidSpec,
    LengthSpec,
    NumericSpec,
    PythonSpec,
    RegexSpec,
)

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


class _Rule:
    calls = 0

    def __init__(self, name: str, weight: float) -> None:
        self.name = name
        self.weight = weight

    async def evaluate(self, ctx: EvalContext) -> EvalResult:
        return self.check(ctx)

    def check(self, ctx: EvalContext) -> EvalResult:  # pragma: no cover - abstract
        raise NotImplementedError


def _no_reference(what: str) -> EvalResult:
    return EvalResult.failed(f"{what}: no value given and the case has no expected output")


class Exact(_Rule):
    def __init__(self, spec: ExactSpec, name: str) -> None:
        super().__init__(name, spec.weight)
        self.spec = spec

    def check(self, ctx: EvalContext) -> EvalResult:
        wanted = self.spec.value if self.spec.value is not None else ctx.expected
        if wanted is None:
            return _no_reference("exact")
        got = ctx.output
        if self.spec.strip:
            got, wanted = got.strip(), wanted.strip()
        if not self.spec.case_sensitive:
            got, wanted = got.casefold(), wanted.casefold()
        ok = got == wanted
        return EvalResult(1.0 if ok else 0.0, "equal" if ok else "differs")


class Contains(_Rule):
    def __init__(self, spec: ContainsSpec, name: str) -> None:
        super().__init__(name, spec.weight)
        self.spec = spec

    def check(self, ctx: EvalContext) -> EvalResult:
        raw = self.spec.value if self.spec.value is not None else ctx.expected
        if raw is None:
            return _no_reference("contains")
        values = [raw] if isinstance(raw, str) else list(raw)
        text = ctx.output if self.spec.case_sensitive else ctx.output.casefold()
        found = [v for v in values if (v if self.spec.case_sensitive else v.casefold()) in text]
        missing = [v for v in values if v not in found]
        if self.spec.mode == "any":
            score = 1.0 if found else 0.0
        elif self.spec.partial:
            score = len(found) / len(values) if values else 1.0
        else:
            score = 0.0 if missing else 1.0
        reason = "found all" if not missing else "missing " + ", ".join(map(repr, missing))
        return EvalResult(score, reason)


class Regex(_Rule):
    _FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}

    def __init__(self, spec: RegexSpec, name: str) -> None:
        super().__init__(name, spec.weight)
        flags = 0
        for letter in spec.flags:
            flags |= self._FLAGS.get(letter, 0)
        self.pattern = re.compile(spec.pattern, flags)

    def check(self, ctx: EvalContext) -> EvalResult:
        ok = self.pattern.search(ctx.output) is not None
        return EvalResult(1.0 if ok else 0.0, "matches" if ok else "no match")


def _parse_json(text: str) -> tuple[Any, str | None]:
    try:
        return json.loads(text), None
    except ValueError as exc:
        return None, f"not JSON: {exc}"


class JsonValid(_Rule):
    def __init__(self, spec: JsonValidSpec, name: str) -> None:
        super().__init__(name, spec.weight)

    def check(self, ctx: EvalContext) -> EvalResult:
        _, problem = _parse_json(ctx.output)
        return EvalResult(0.0 if problem else 1.0, problem or "valid JSON")


class JsonSchema(_Rule):
    def __init__(self, spec: JsonSchemaSpec, name: str) -> None:
        import jsonschema

        super().__init__(name, spec.weight)
        self.validator = jsonschema.validators.validator_for(spec.json_schema)(spec.json_schema)

    def check(self, ctx: EvalContext) -> EvalResult:
        data, problem = _parse_json(ctx.output)
        if problem:
            return EvalResult(0.0, problem)
        error = next(iter(self.validator.iter_errors(data)), None)
        if error is None:
            return EvalResult(1.0, "matches the schema")
        where = "/".join(map(str, error.absolute_path)) or "(root)"
        return EvalResult(0.0, f"{where}: {error.message}"[:200])


class Numeric(_Rule):
    def __init__(self, spec: NumericSpec, name: str) -> None:
        super().__init__(name, spec.weight)
        self.spec = spec

    def check(self, ctx: EvalContext) -> EvalResult:
        wanted = self.spec.value
        if wanted is None:
            match = _NUMBER.search(ctx.expected or "")
            if match is None:
                return _no_reference("numeric")
            wanted = float(match.group())
        got_match = _NUMBER.search(ctx.output)
        if got_match is None:
            return EvalResult(0.0, "no number in the output")
        got = float(got_match.group())
        allowed = self.spec.tolerance * (abs(wanted) if self.spec.relative else 1.0)
        ok = abs(got - wanted) <= allowed
        return EvalResult(1.0 if ok else 0.0, f"{got:g} vs {wanted:g} (±{allowed:g})")


class Length(_Rule):
    def __init__(self, spec: LengthSpec, name: str) -> None:
        super().__init__(name, spec.weight)
        self.spec = spec

    def check(self, ctx: EvalContext) -> EvalResult:
        size = len(ctx.output.split()) if self.spec.unit == "words" else len(ctx.output)
        low = self.spec.min if self.spec.min is not None else 0
        high = self.spec.max if self.spec.max is not None else size
        ok = low <= size <= high
        return EvalResult(1.0 if ok else 0.0, f"{size} {self.spec.unit}")


class Python(_Rule):
    """``module:function(output, expected=..., inputs=...)`` -> score, bool or (score, reason)."""

    def __init__(self, spec: PythonSpec, name: str) -> None:
        super().__init__(name, spec.weight)
        module, _, attr = spec.function.partition(":")
        self.function: Callable[..., Any] = getattr(importlib.import_module(module), attr)

    def check(self, ctx: EvalContext) -> EvalResult:
        try:
            result = self.function(ctx.output, expected=ctx.expected, inputs=dict(ctx.inputs))
        except Exception as exc:
            return EvalResult.failed(f"{type(exc).__name__}: {exc}"[:200])
        reason = ""
        if isinstance(result, tuple) and len(result) == 2:
            result, reason = result
        if isinstance(result, bool):
            result = 1.0 if result else 0.0
        if not isinstance(result, int | float) or not 0.0 <= float(result) <= 1.0:
            return EvalResult.failed(f"returned {result!r}, not a score in 0..1")
        return EvalResult(float(result), str(reason))
