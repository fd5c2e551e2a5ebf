"""Static checks of template text, done once when a prompt is loaded.

Rendering lives in :mod:`prompts.render`; this module only parses templates to find
mistakes early: syntax errors (with their line), oversize templates, the variables a
template reads, and words that suggest a credential was pasted into a prompt.
"""

from __future__ import annotations

import re
from functools import lru_cache

from jinja2 import TemplateSyntaxError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment

MAX_TEMPLATE_CHARS = 10_000
"""Longest template (system or user) a prompt file may carry."""
MAX_TEMPLATE_VARIABLES = 50
"""Most distinct variables one template may read."""

# A letter on either side means another word ("tokens" as a unit of length, "secretary"),
# so the pattern only matches the credential words themselves, including inside
# snake_case names such as ``access_token`` or ``{{ api_key }}``.
FORBIDDEN_PATTERN = re.compile(
    r"(?<![a-z])(?:passwords?|passwd|secrets?|token|api[ _-]?keys?)(?![a-z])",
    re.IGNORECASE,
)
"""Words a template must not contain: prompts must never carry or ask for credentials."""

# Parsing only needs the syntax settings, which every environment of ours shares, so
# one parser serves all checks; the renderer keeps its own environment for rendering.
_PARSER = SandboxedEnvironment(autoescape=False, trim_blocks=True, lstrip_blocks=True)


class TemplateProblem(ValueError):
    """A template is unusable; ``line`` is set for syntax errors."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line is not None else message)
        self.line = line


@lru_cache(maxsize=4096)
def parse(source: str) -> nodes.Template:
    """The Jinja2 AST of ``source``; raise :class:`TemplateProblem` on a syntax error."""
    try:
        return _PARSER.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(exc.message or "syntax error", exc.lineno) from None


def template_variables(source: str) -> frozenset[str]:
    """Names ``source`` reads from its context (loop and ``set`` variables excluded)."""
    return frozenset(meta.find_undeclared_variables(parse(source)))


def check_template(source: str) -> list[str]:
    """Every problem of one template's text, as messages; empty when it is fine.

    Checks length, forbidden words, syntax and the number of variables read. Whether the
    variables are declared is the prompt's business (it knows the declarations).
    """
    problems: list[str] = []
    if len(source) > MAX_TEMPLATE_CHARS:
        problems.append(f"{len(source)} characters, at most {MAX_TEMPLATE_CHARS} allowed")
    for match in FORBIDDEN_PATTERN.finditer(source):
        line = source.count("\n", 0, match.start()) + 1
        problems.append(
            f"line {line}: forbidden word {match.group(0)!r}: "
            "templates must not carry or ask for credentials"
        )
    try:
        names = template_variables(source)
    except TemplateProblem as exc:
        problems.append(str(exc))
    else:
        if len(names) > MAX_TEMPLATE_VARIABLES:
            problems.append(
                f"reads {len(names)} variables, at most {MAX_TEMPLATE_VARIABLES} allowed"
            )
    return problems
