"""SIMULATED task-aware answers for the shipped example (``config/experiments/summarize.toml``).

Not a model: a small catalogue of code snippets, each with a purpose, its key logic and
its edge cases. A *simulated summarizer* answers the shipped ``summarize`` prompt from
it: asked only to "summarize", it usually gives the purpose and sometimes the logic;
asked for "purpose, key logic and edge cases", it usually gives all three. So the
shipped experiment shows a real difference between its two variants. A *simulated
judge* (a request whose system message asks for a JSON ``score``) grades an answer by
the share of the reference answer's key terms it contains.

Answers vary from call to call as a sampled model's do: each part is included with a
probability, drawn fresh per call unless ``temperature`` is 0 (then the likelier choice
is always made); a ``seed`` in the body makes a call repeatable (and the experiment's
``seed`` makes the shipped example print the same figures every run). Every answer starts
with ``[simulated ...]``; nothing here is presented as a model's output.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from typing import Any

from promptlab.providers import simulated_mutator


@dataclass(frozen=True)
class Snippet:
    pattern: str
    """Regex that recognises the snippet in the code."""
    purpose: str
    logic: str
    edges: str


CATALOGUE: tuple[Snippet, ...] = (
    Snippet(
        r"\bfib\b",
        "Computes the n-th Fibonacci number",
        "recursively",
        "exponential time for large n",
    ),
    Snippet(
        r"\bclamp\b", "Limits x to the range [lo, hi]", "using min and max", "assumes lo <= hi"
    ),
    Snippet(
        r"\bfactorial\b",
        "Computes the factorial of n",
        "recursively, n times factorial(n - 1)",
        "negative n never terminates",
    ),
    Snippet(
        r"\bis_palindrome\b",
        "Checks whether a string reads the same backwards",
        "comparing it with its reverse",
        "case and spaces count",
    ),
    Snippet(
        r"\bflatten\b",
        "Flattens a nested list into one list",
        "recursively over sublists",
        "deep nesting can exceed the recursion limit",
    ),
    Snippet(
        r"\bchunks\b",
        "Splits a list into chunks of size n",
        "by slicing in steps of n",
        "the last chunk may be shorter",
    ),
    Snippet(
        r"\bdebounce\b",
        "Delays calls until input stops for wait milliseconds",
        "resetting a timer on every call",
        "the last call's arguments win",
    ),
    Snippet(
        r"\bbinary_search\b",
        "Finds the index of a target in a sorted list",
        "halving the search range each step",
        "returns -1 when absent",
    ),
    Snippet(
        r"\bword_count\b",
        "Counts how often each word occurs",
        "with a dictionary of counts",
        "punctuation stays attached to words",
    ),
    Snippet(
        r"\bmerge_dicts\b",
        "Merges two dictionaries into a new one",
        "later keys overriding earlier ones",
        "nested dictionaries are not merged",
    ),
)

_SUMMARIZE = re.compile(r"^\s*summarize this code:", re.IGNORECASE)
_STRUCTURED = re.compile(r"purpose, key logic and edge cases", re.IGNORECASE)
_STOP = frozenset("the a an of to and or in on for with by is it its as from each every".split())

# P(include part) per prompt style: (purpose, logic, edge cases).
_PLAIN = (0.9, 0.45, 0.15)
_STRUCT = (0.95, 0.85, 0.75)
_MINI = 0.75
"""A ``simulated/*mini*`` model includes each part this much less often."""

PRICES = {"mini": (0.15e-6, 0.6e-6), "judge": (0.15e-6, 0.6e-6), "": (2.5e-6, 10e-6)}
"""SIMULATED USD per prompt and completion token: ``*mini*`` and ``judge`` are cheap,
every other simulated model costs like a large model. Not any provider's price list."""


def price(model: str, prompt_tokens: int, completion_tokens: int) -> float:
    """The SIMULATED cost of a simulated call (see :data:`PRICES`)."""
    name = model.partition("/")[2] or model
    key = next((k for k in PRICES if k and k in name), "")
    per_in, per_out = PRICES[key]
    return prompt_tokens * per_in + completion_tokens * per_out


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _rng(model: str, user: str, body: dict[str, Any]) -> tuple[random.Random, float]:
    temperature = body.get("temperature", 1.0)
    temperature = float(temperature) if isinstance(temperature, int | float) else 1.0
    seed = body.get("seed")
    if seed is None:
        return random.Random(), temperature
    # The same seed on another request draws differently, as a model's sampling would.
    return random.Random(f"{seed}:{model}:{user}"), temperature


def _include(p: float, rng: random.Random, temperature: float) -> bool:
    if temperature <= 0:
        return p >= 0.5
    return rng.random() < p


def answer(model: str, body: dict[str, Any]) -> str | None:
    """A task-aware answer when ``body`` is the shipped example's task; None otherwise."""
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    system = next((_text(m.get("content")) for m in messages if m.get("role") == "system"), "")
    user = next(
        (_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
    )
    if '"score"' in system and "Answer to grade:" in user:
        return _judge(model, user)
    if simulated_mutator.is_mutation_request(system, user):
        return simulated_mutator.mutate(system, user)
    structured = bool(_STRUCTURED.search(user))
    if not structured and not _SUMMARIZE.match(user):
        return None
    snippet = next((s for s in CATALOGUE if re.search(s.pattern, user)), None)
    if snippet is None:
        return None
    rng, temperature = _rng(model, user, body)
    chances = _STRUCT if structured else _PLAIN
    if "mini" in model:
        chances = (chances[0] * _MINI, chances[1] * _MINI, chances[2] * _MINI)
    parts = [
        text
        for text, p in zip((snippet.purpose, snippet.logic, snippet.edges), chances, strict=True)
        if _include(p, rng, temperature)
    ]
    if not parts:
        parts = ["Does something with its inputs"]
    return f"[simulated {model}] " + "; ".join(parts) + "."


def _terms(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9-]+", text.lower()) if len(w) > 1 and w not in _STOP}


_DATA_TAGS = re.compile(r"<data-[0-9a-f]+>\n?|\n?</data-[0-9a-f]+>")
"""The tags the judge's data comes between (``lab.evaluators.judge``), read past here."""


def _judge(model: str, user: str) -> str:
    user = _DATA_TAGS.sub("", user)
    answer_text = user.split("Answer to grade:", 1)[1]
    match = re.search(r"Reference answer:\n(.*?)\n\nAnswer to grade:", user, re.DOTALL)
    if match is None:
        words = len(answer_text.split())
        score = 1.0 if 5 <= words <= 80 else 0.5
        reason = f"[simulated judge {model}] no reference; {words} words"
    else:
        wanted = _terms(match.group(1))
        found = wanted & _terms(answer_text)
        score = round(len(found) / len(wanted), 3) if wanted else 1.0
        reason = f"[simulated judge {model}] {len(found)}/{len(wanted)} reference terms present"
    return json.dumps({"score": score, "reason": reason})
