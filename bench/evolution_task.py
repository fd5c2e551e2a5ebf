"""A SIMULATED prompt-improvement task with a known optimum, for the evolution bench and tests.

Nothing here calls a model. The simulated model's answer quality on a test case depends
on known properties of the prompt text: each case needs some of five features (numbered
steps, a JSON format, an expert persona, a worked example, a mention of edge cases), and
every word beyond :data:`WORD_ALLOWANCE` costs a little. A prompt with all five features
and no filler scores 1.0 on every case: the optimum is 1.0.

The simulated mutator makes plausible edits: each operator tends to add the feature it is
about (``add_structure`` adds steps, ``change_persona`` a persona...), ``elaborate`` adds
filler (and sometimes a feature), ``simplify`` drops a sentence, ``rephrase`` rewords,
``crossover`` merges two parents' sentences, and ``reflect`` reads the simulated judge's
reasons on failing cases ("missing: edge cases") and adds what they name. Now and then it
drops the ``{{ code }}`` variable, as real mutators do, and that mutant must be rejected.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

WORD_ALLOWANCE = 45
"""Words of prompt text that cost nothing; each further word costs WORD_PENALTY."""
WORD_PENALTY = 0.004
BROKEN_RATE = 0.1
"""Share of mutations that drop the required variable (the validation must catch them)."""
OPTIMUM = 1.0


@dataclass(frozen=True)
class Feature:
    name: str
    pattern: re.Pattern[str]
    """How the simulated model recognises the feature in the prompt."""
    sentence: str
    """What the simulated mutator writes to add it."""
    in_system: bool = False


def _f(name: str, pattern: str, sentence: str, in_system: bool = False) -> Feature:
    return Feature(name, re.compile(pattern, re.IGNORECASE), sentence, in_system)


FEATURES: tuple[Feature, ...] = (
    _f("steps", r"\bsteps?\b", "Answer in numbered steps."),
    _f("json", r"\bjson\b", "Reply as JSON with keys purpose and logic."),
    _f("persona", r"\byou are an? (senior|expert)\b", "You are a senior engineer.", True),
    _f("example", r"\bexample\b", "Example: for a sort function, say what order it sorts in."),
    _f("edge cases", r"\bedge cases?\b", "Mention the edge cases."),
)
BY_NAME = {f.name: f for f in FEATURES}
OPERATOR_FEATURE = {
    "add_structure": "steps",
    "change_format": "json",
    "change_persona": "persona",
    "add_examples": "example",
    "add_constraints": "edge cases",
}
FILLER = (
    "Please be thorough and careful in everything you write here.",
    "Take into account everything that might matter to the reader.",
    "Make sure the answer is helpful and well written.",
)
SYNONYMS = (("Summarize", "Describe"), ("Describe", "Explain"), ("Explain", "Summarize"))

# Which features each simulated test case needs (its quality is the share present).
CASES: dict[str, tuple[str, ...]] = {
    "factorial": ("steps", "edge cases"),
    "parser": ("json", "persona"),
    "sorting": ("example", "steps"),
    "cache": ("persona", "edge cases", "json"),
    "retry": ("steps", "example", "edge cases"),
    "tokenizer": ("json",),
}
SEED_SYSTEM: str | None = None
SEED_TEMPLATE = "Summarize this code: {{ code }}"


def case_quality(system: str | None, template: str, case: str) -> tuple[float, list[str]]:
    """The simulated model's quality on ``case`` (0..1) and the simulated judge's reasons."""
    text = f"{system or ''}\n{template}"
    needs = CASES[case]
    missing = [name for name in needs if not BY_NAME[name].pattern.search(text)]
    words = len(text.split())
    penalty = max(0, words - WORD_ALLOWANCE) * WORD_PENALTY
    quality = max(0.0, (len(needs) - len(missing)) / len(needs) - penalty)
    reasons = [f"missing: {name}" for name in missing]
    if penalty > 0:
        reasons.append(f"too long: {words} words")
    return round(quality, 6), reasons


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.:?!])\s+(?=[A-Z{])", text.strip()) if s]


def _with(template: str, sentence: str) -> str:
    # New instructions go before the code, which stays last.
    head, sep, tail = template.rpartition("{{ code }}")
    if not sep:
        return f"{template} {sentence}"
    return f"{head.rstrip()} {sentence}\n{{{{ code }}}}{tail}".lstrip()


def _add(system: str | None, template: str, feature: Feature) -> tuple[str | None, str]:
    if feature.in_system:
        if feature.pattern.search(system or ""):
            return system, template
        return (f"{feature.sentence} {system or ''}".strip(), template)
    if feature.pattern.search(template):
        return system, template
    return system, _with(template, feature.sentence)


def simulated_mutation(
    operator: str,
    system: str | None,
    template: str,
    rng: np.random.Generator,
    *,
    other: tuple[str | None, str] | None = None,
    reasons: Sequence[str] = (),
) -> dict[str, str | None]:
    """The simulated mutator's answer, as the JSON object a real one returns."""
    new_system, new_template = system, template
    if operator in OPERATOR_FEATURE and rng.random() < 0.8:
        new_system, new_template = _add(system, template, BY_NAME[OPERATOR_FEATURE[operator]])
    elif operator == "elaborate":
        new_template = _with(template, FILLER[int(rng.integers(len(FILLER)))])
        if rng.random() < 0.4:
            feature = FEATURES[int(rng.integers(len(FEATURES)))]
            new_system, new_template = _add(new_system, new_template, feature)
    elif operator == "simplify":
        parts = _sentences(template)
        droppable = [i for i, s in enumerate(parts) if "{{" not in s]
        if droppable:
            filler = [i for i in droppable if parts[i] in FILLER]
            drop = filler[0] if filler and rng.random() < 0.7 else int(rng.choice(droppable))
            new_template = " ".join(s for i, s in enumerate(parts) if i != drop)
    elif operator == "rephrase":
        for old, new in SYNONYMS:
            if old in template:
                new_template = template.replace(old, new, 1)
                break
        else:
            new_template = "Please. " + template
    elif operator == "crossover" and other is not None:
        mine, theirs = _sentences(template), _sentences(other[1])
        merged = [s for s in mine if "{{" not in s]
        merged += [s for s in theirs if "{{" not in s and s not in merged and rng.random() < 0.7]
        new_template = " ".join(merged) + "\n{{ code }}"
        new_system = system or other[0]
    elif operator == "reflect":
        wanted = [r.removeprefix("missing: ") for r in reasons if r.startswith("missing: ")]
        if wanted:
            # The most often named gap first: the fix that helps the most failing cases.
            names, counts = np.unique(wanted, return_counts=True)
            name = str(names[int(np.argmax(counts))])
            new_system, new_template = _add(system, template, BY_NAME[name])
        elif any(r.startswith("too long") for r in reasons):
            new_template = " ".join(s for s in _sentences(template) if s not in FILLER)
    if rng.random() < BROKEN_RATE:
        new_template = new_template.replace("{{ code }}", "the code")
    return {"system": new_system, "template": new_template, "rationale": f"simulated {operator}"}
