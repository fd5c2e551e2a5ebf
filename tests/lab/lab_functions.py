"""Python evaluators named as ``module:function`` by the evaluator tests."""

from __future__ import annotations

from typing import Any


def starts_with_yes(output: str, *, expected: str | None, inputs: dict[str, Any]) -> bool:
    return output.startswith("yes")


def half_with_reason(output: str, **_: Any) -> tuple[float, str]:
    return 0.5, "half"


def boom(output: str, **_: Any) -> float:
    raise RuntimeError("broken evaluator")


def out_of_range(output: str, **_: Any) -> float:
    return 3.0
