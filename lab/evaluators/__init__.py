"""Evaluators: rules and an LLM judge, one registry shared by offline runs and live traffic."""

from promptlab.lab.evaluators.base import EvalContext, EvalResult, Evaluator
from promptlab.lab.evaluators.judge import JUDGE_SYSTEM, parse_verdict
from promptlab.lab.evaluators.registry import REGISTRY, Panel, Verdict, build, combine, names
from promptlab.lab.evaluators.specs import EvaluatorSpec

__all__ = [
    "JUDGE_SYSTEM",
    "REGISTRY",
    "EvalContext",
    "EvalResult",
    "Evaluator",
    "EvaluatorSpec",
    "Panel",
    "Verdict",
    "build",
    "combine",
    "names",
    "parse_verdict",
]
