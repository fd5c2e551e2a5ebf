"""A SIMULATED mutator: plausible prompt edits with no model, for the demo and no-key runs.

Answers a request shaped like promptlab's mutation requests (a system message asking
for ``{"system", "template", "rationale"}`` and a user message with ``Instruction (op):``
and ``Parent variant:``) with a deterministic edit of the parent: ``add_structure``
asks for the purpose, key logic and edge cases, ``change_persona`` sets an expert
persona, ``simplify`` drops a sentence, ``crossover`` merges two parents' sentences,
``reflect`` adds what the failing cases' reasons point at, and so on. The rationale
starts with ``[simulated mutator]``: nothing here poses as a model's work.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

_OPERATOR = re.compile(r"^Instruction \((\w+)\):", re.MULTILINE)
_SENTENCE = re.compile(r"(?<=[.:?!])\s+(?=[A-Z{])")
_VARIABLE = re.compile(r"\{\{.*?\}\}")

STRUCTURE = "Cover the purpose, key logic and edge cases."
EDITS: dict[str, tuple[str, ...]] = {
    "add_structure": (STRUCTURE, "Answer in three labelled parts: purpose, logic, caveats."),
    "add_examples": ("For example, say what a sort function sorts and in which order.",),
    "elaborate": ("Be specific: name the inputs, the result and any side effects.",),
    "add_constraints": ("Answer in at most three sentences.", "Do not restate the code."),
    "change_format": ("Answer as a short bullet list.", "Answer as one short paragraph."),
    "reflect": (STRUCTURE,),
}
PERSONAS = ("You are a senior engineer.", "You are a patient teacher of programming.")
SYNONYMS = (("Summarize", "Describe"), ("Describe", "Explain"), ("Explain", "Summarize"))


def is_mutation_request(system: str, user: str) -> bool:
    return '"template"' in system and '"rationale"' in system and "Parent variant:" in user


def _object_after(text: str, marker: str) -> dict[str, Any] | None:
    start = text.find(marker)
    if start < 0:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(text[start + len(marker) :].lstrip())
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _insert(template: str, sentence: str) -> str:
    if sentence in template:
        return template
    match = list(_VARIABLE.finditer(template))
    if not match:
        return f"{template.rstrip()} {sentence}"
    last = match[-1]
    head = template[: last.start()].rstrip()
    return f"{head} {sentence}\n{template[last.start() :]}".lstrip()


def mutate(system: str, user: str) -> str:
    """The simulated mutator's JSON answer to one mutation request."""
    digest = hashlib.sha256(user.encode()).digest()
    pick = digest[0]
    match = _OPERATOR.search(user)
    operator = match.group(1) if match else "rephrase"
    parent = _object_after(user, "Parent variant:") or {}
    template = str(parent.get("template") or "")
    new_system = parent.get("system")
    if operator in EDITS:
        choices = EDITS[operator]
        template = _insert(template, choices[pick % len(choices)])
    elif operator == "change_persona":
        new_system = PERSONAS[pick % len(PERSONAS)]
    elif operator == "simplify":
        parts = _SENTENCE.split(template.strip())
        droppable = [i for i, s in enumerate(parts) if "{{" not in s]
        if droppable:
            drop = droppable[pick % len(droppable)]
            template = " ".join(s for i, s in enumerate(parts) if i != drop)
    elif operator == "crossover":
        other = _object_after(user, "Second parent variant:") or {}
        mine = _SENTENCE.split(template.strip())
        extra = [
            s
            for s in _SENTENCE.split(str(other.get("template") or "").strip())
            if "{{" not in s and s not in mine
        ]
        for sentence in extra[: 1 + pick % 2]:
            template = _insert(template, sentence)
        new_system = new_system or other.get("system")
    else:  # rephrase
        for old, new in SYNONYMS:
            if old in template:
                template = template.replace(old, new, 1)
                break
        else:
            template = "Please read this carefully. " + template
    return json.dumps(
        {
            "system": new_system,
            "template": template,
            "rationale": f"[simulated mutator] {operator}",
        }
    )
