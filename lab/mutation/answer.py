"""Reading the mutator's answer: ``{"system": str | null, "template": str, "rationale": str}``.

The answer is text from a model, so it is data to check, not a template to trust: only
a well-formed JSON object of that shape (possibly inside a Markdown fence) becomes a
draft. ``system`` absent keeps the parent's system message, ``null`` removes it. Any
other answer (empty, plain text, JSON cut short such as ``{"template": "...",
"rationale": "cut sh``, an array, unknown keys, a key of the wrong type, JSON nested
deeper than Python can read) is a :class:`MutatorError` with the reason: the caller
reports it as a rejected mutant and never falls back to the parent or to the raw text.
The draft then passes the same checks and rendering bounds as a template defined
through ``/admin`` (:mod:`lab.mutation.validate`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

_FENCE = re.compile(r"^\s*```[a-zA-Z]*\s*\n(?P<body>.*?)\n\s*```\s*$", re.DOTALL)
_KEEP = object()
KEYS = frozenset({"system", "template", "rationale"})
"""The keys the mutator is asked for (``config/evolution/mutator.toml``)."""


class MutatorError(RuntimeError):
    """The mutator failed: the call did not succeed or its answer is unusable."""


@dataclass(frozen=True)
class MutantDraft:
    """The texts of a proposed mutant, before validation."""

    system: str | None
    template: str
    rationale: str = ""


def parse_answer(text: str | None, *, parent_system: str | None) -> MutantDraft:
    """The draft in the mutator's answer ``text``; raise :class:`MutatorError` if none."""
    if text is None or not text.strip():
        raise MutatorError("the mutator returned an empty answer")
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    candidate = fenced.group("body").strip() if fenced else stripped
    try:
        data = json.loads(candidate)
    except json.JSONDecodeError as exc:
        raise MutatorError(
            f"the mutator's answer is not the JSON object asked for ({exc.msg} at "
            f"character {exc.pos}): {_quote(candidate)}"
        ) from None
    except RecursionError:
        raise MutatorError("the mutator's answer is JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise MutatorError(
            f"the mutator's answer is a JSON {type(data).__name__}, not the object asked "
            f"for: {_quote(candidate)}"
        )
    if unknown := sorted(set(data) - KEYS):
        raise MutatorError(
            f"the mutator's JSON has keys it was not asked for: {', '.join(map(repr, unknown[:5]))}"
        )
    template = data.get("template")
    if not isinstance(template, str) or not template.strip():
        raise MutatorError(f"the mutator's JSON has no usable 'template' (keys: {sorted(data)})")
    system = data.get("system", _KEEP)
    if system is _KEEP:
        system = parent_system
    elif system is not None and not isinstance(system, str):
        raise MutatorError(f"the mutator's 'system' is a {type(system).__name__}, not a string")
    elif isinstance(system, str) and not system.strip():
        system = None
    rationale = data.get("rationale")
    if rationale is not None and not isinstance(rationale, str):
        raise MutatorError(
            f"the mutator's 'rationale' is a {type(rationale).__name__}, not a string"
        )
    return MutantDraft(
        system=system,
        template=template,
        rationale=rationale.strip() if isinstance(rationale, str) else "",
    )


def _quote(text: str) -> str:
    """The start of a model's text, quoted for a reason (never the whole of it)."""
    return repr(text[:80]) + (" [...]" if len(text) > 80 else "")
