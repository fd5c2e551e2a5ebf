"""Reading the mutator's answer: ``{"system": str | null, "template": str, "rationale": str}``.

Models do not always obey: the JSON may come inside a Markdown fence, or not at all. A
JSON object is read by its keys (``system`` absent keeps the parent's system message,
``null`` removes it); an answer that is not a JSON object is taken as the template
itself. An empty answer, or JSON without a usable ``template``, is a
:class:`MutatorError`: the caller reports it and never falls back to the parent.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

_FENCE = re.compile(r"^\s*```[a-zA-Z]*\s*\n(?P<body>.*?)\n\s*```\s*$", re.DOTALL)
_KEEP = object()


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
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        # Plain text (or JSON that is not an object): the answer is the template.
        return MutantDraft(system=parent_system, template=stripped, rationale="")
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
    return MutantDraft(
        system=system,
        template=template,
        rationale=rationale.strip() if isinstance(rationale, str) else "",
    )
