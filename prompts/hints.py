"""Messages that help a person fix a prompt file: near misses ("did you mean") and
variables a template reads but the file does not declare."""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable

from promptlab.prompts.templates import template_variables


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the choice closest to a misspelt ``word``, else ``""``."""
    close = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def undeclared_messages(source: str, declared: Collection[str]) -> list[str]:
    """One message per variable template ``source`` reads that is not in ``declared``.

    Raises :class:`~promptlab.prompts.errors.TemplateProblem` when ``source`` does not parse.
    """
    return [
        f"uses undeclared variable {name!r}; declare it under [[variables]]"
        + did_you_mean(name, declared)
        for name in sorted(template_variables(source) - set(declared))
    ]
