"""Diversity: near-duplicate prompts are the same candidate and are measured once.

Two variants are near-duplicates when their normalised text (system and template,
lowercased, punctuation dropped, whitespace collapsed) is equal, or similar beyond
``threshold`` by :class:`difflib.SequenceMatcher`'s ratio.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from difflib import SequenceMatcher

from promptlab.prompts import VariantSpec

_PUNCT = re.compile(r"[^\w{}\s]+")
_SPACE = re.compile(r"\s+")

DEFAULT_THRESHOLD = 0.97
"""Similarity above which two prompts count as one (1.0: only equal normalised text)."""


def normalised(variant: VariantSpec) -> str:
    """The variant's text with case, punctuation and spacing differences removed."""
    text = f"{variant.system or ''}\n{variant.template}".lower()
    return _SPACE.sub(" ", _PUNCT.sub(" ", text)).strip()


def near_duplicate(
    variant: VariantSpec, others: Iterable[VariantSpec], threshold: float = DEFAULT_THRESHOLD
) -> str | None:
    """The name of the first of ``others`` that ``variant`` nearly duplicates, or None."""
    text = normalised(variant)
    for other in others:
        other_text = normalised(other)
        if text == other_text:
            return other.name
        if threshold < 1.0:
            matcher = SequenceMatcher(None, text, other_text, autojunk=False)
            if matcher.real_quick_ratio() >= threshold and matcher.ratio() >= threshold:
                return other.name
    return None
